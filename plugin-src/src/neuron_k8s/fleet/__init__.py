"""`kubectl neuron`: the fleet seen through the API (docs/kubectl-neuron.md). Everything but
apiread.py and cli.py is pure: it reads the lists it is given, so that a 5,000-node cluster
costs one list per kind and the views can be tested on plain dicts."""
