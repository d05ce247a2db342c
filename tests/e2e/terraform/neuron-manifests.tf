# AWS's four manifests, each split into one resource per object. (The seed fetched them with
# data "http"; the test writes AWS-shaped copies into manifests/.) Step 6 of docs/migration.md
# deletes this file and adds removed blocks in its place.
data "kubectl_file_documents" "neuron_device_plugin_rbac" {
  content = file("${path.module}/manifests/k8s-neuron-device-plugin-rbac.yml")
}

resource "kubectl_manifest" "neuron_device_plugin_rbac" {
  for_each  = data.kubectl_file_documents.neuron_device_plugin_rbac.manifests
  yaml_body = each.value
}

data "kubectl_file_documents" "neuron_device_plugin" {
  content = file("${path.module}/manifests/k8s-neuron-device-plugin.yml")
}

resource "kubectl_manifest" "neuron_device_plugin" {
  for_each   = data.kubectl_file_documents.neuron_device_plugin.manifests
  yaml_body  = each.value
  depends_on = [kubectl_manifest.neuron_device_plugin_rbac]
}

data "kubectl_file_documents" "neuron_scheduler" {
  content = file("${path.module}/manifests/k8s-neuron-scheduler-eks.yml")
}

resource "kubectl_manifest" "neuron_scheduler" {
  for_each  = data.kubectl_file_documents.neuron_scheduler.manifests
  yaml_body = each.value
}

data "kubectl_file_documents" "my_scheduler" {
  content = file("${path.module}/manifests/my-scheduler.yml")
}

resource "kubectl_manifest" "my_scheduler" {
  for_each   = data.kubectl_file_documents.my_scheduler.manifests
  yaml_body  = each.value
  depends_on = [kubectl_manifest.neuron_device_plugin]
}
