# Sourced after versions.env: which Kubernetes release this run builds and runs.
# NEURON_E2E_K8S_RELEASE=oldest takes KUBERNETES_OLDEST_VERSION (the version matrix's second
# column, built from cluster/k8s/oldest); anything else, KUBERNETES_VERSION (cluster/k8s).
k8s_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case "${NEURON_E2E_K8S_RELEASE:-current}" in
  current) K8S_VERSION=$KUBERNETES_VERSION K8S_MODULE=$k8s_dir ;;
  oldest) K8S_VERSION=$KUBERNETES_OLDEST_VERSION K8S_MODULE=$k8s_dir/oldest ;;
  *) echo "NEURON_E2E_K8S_RELEASE must be current or oldest, not ${NEURON_E2E_K8S_RELEASE}" >&2
     exit 2 ;;
esac
# Per release: the binaries and the images built from them.
K8S_BIN=$k8s_dir/../.cache/k8s-$K8S_VERSION/bin
K8S_IMAGES=$k8s_dir/../.cache/k8s-$K8S_VERSION/images
