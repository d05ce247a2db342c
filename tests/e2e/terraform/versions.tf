# The shape of the Terraform that applied AWS's Neuron manifests before the chart existed: the
# gavinbunney/kubectl provider, one kubectl_manifest per document. tests/e2e/test_95_terraform.py
# applies it to the kind cluster, then runs docs/migration.md against it.
terraform {
  required_version = ">= 1.7"
  required_providers {
    kubectl = {
      # The one version in the test's filesystem mirror (versions.env).
      source = "gavinbunney/kubectl"
    }
  }
}

# The cluster comes from KUBE_CONFIG_PATH, which the test sets.
provider "kubectl" {}
