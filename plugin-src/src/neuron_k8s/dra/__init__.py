"""The Neuron DRA driver (`neuron-dra-driver`): a kubelet plugin that publishes a node's Neuron
devices as ResourceSlices and prepares the claims the scheduler allocated. docs/dra.md."""
