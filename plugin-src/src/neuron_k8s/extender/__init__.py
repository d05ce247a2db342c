"""The Neuron scheduler extender: kube-scheduler's filter, prioritize and bind verbs over HTTP,
backed by an in-memory view of nodes and pods kept current by watches."""
