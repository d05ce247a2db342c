"""The Neuron device plugin: serves the kubelet device plugin API v1beta1 for
aws.amazon.com/neuron (whole devices) and aws.amazon.com/neuroncore (cores), one socket each."""
