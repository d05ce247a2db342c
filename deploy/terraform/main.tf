# The Neuron stack as one Helm release, in the namespace and under the object names of AWS's
# raw manifests (docs/migration.md). Copy this directory next to your cluster's Terraform.

provider "helm" {
  kubernetes = {
    host                   = var.cluster_endpoint
    cluster_ca_certificate = base64decode(var.cluster_ca_certificate)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", var.cluster_name]
    }
  }
}

locals {
  # A checkout of this repository; with chart_repository set, aws-compat.yaml is still read
  # from here (or copy it next to my-cluster.yaml and point at the copy).
  chart_dir = "${path.module}/../../charts/neuron"
}

resource "helm_release" "neuron" {
  name       = "neuron"
  namespace  = "kube-system"
  repository = var.chart_repository
  chart      = var.chart_repository == null ? local.chart_dir : "neuron"
  version    = var.chart_repository == null ? null : var.chart_version

  values = [
    file("${path.module}/my-cluster.yaml"),
    # Last: AWS's object names and selectors, so that Helm adopts the objects the manifests made.
    file("${local.chart_dir}/examples/aws-compat.yaml"),
  ]

  set = [
    {
      name  = "global.imageRegistry"
      value = var.image_registry
    },
  ]

  wait    = true
  timeout = 600
}
