# Forget the kubectl_manifest resources that applied AWS's four manifests, without deleting
# their objects: the Helm release owns them now. Use your resources' addresses; once every
# workspace has applied this, the blocks can go.
removed {
  from = kubectl_manifest.neuron_device_plugin_rbac
  lifecycle {
    destroy = false
  }
}

removed {
  from = kubectl_manifest.neuron_device_plugin
  lifecycle {
    destroy = false
  }
}

removed {
  from = kubectl_manifest.neuron_scheduler
  lifecycle {
    destroy = false
  }
}

removed {
  from = kubectl_manifest.my_scheduler
  lifecycle {
    destroy = false
  }
}
