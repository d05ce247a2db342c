{{/*
Real mode of this project's device plugin and DRA driver: what they read from the node (the
Neuron driver's device nodes, sysfs, kernel messages) and where they keep the hardware errors
they saw. And the admission policy that keeps a component's writes of its Node's status to the
NeuronHealth condition of its own node.
*/}}

{{/* The host paths of a block's `hostDevices` as the container sees them, as JSON
{env: [...], mounts: [...], volumes: [...], privileged: bool}. Called with
(dict "values" <devicePlugin or dra block> "prefix" "NEURON_DP_" or "NEURON_DRA_"); only for
real mode of the neuron-k8s image (the caller checks). */}}
{{- define "neuron.hostDevices" -}}
{{- $h := .values.hostDevices -}}
{{- $p := .prefix -}}
{{- $env := list -}}
{{- $mounts := list -}}
{{- $volumes := list -}}
{{- $privileged := false -}}
{{- /* A bind of the directory, not of the nodes in it: nodes the driver makes later appear. */ -}}
{{- $dev := trimSuffix "/" $h.devPath -}}
{{- $volumes = append $volumes (dict "name" "host-dev" "hostPath" (dict "path" $h.devPath "type" "Directory")) -}}
{{- $mounts = append $mounts (dict "name" "host-dev" "mountPath" "/host/dev" "readOnly" true) -}}
{{- $env = append $env (dict "name" (print $p "DEV_ROOT") "value" "/host/dev") -}}
{{- /* A real node's sysfs is the container's own /sys: nothing to mount. */ -}}
{{- if $h.sysfsPath -}}
{{- $volumes = append $volumes (dict "name" "host-sys" "hostPath" (dict "path" $h.sysfsPath "type" "Directory")) -}}
{{- $mounts = append $mounts (dict "name" "host-sys" "mountPath" "/host/sys" "readOnly" true) -}}
{{- $env = append $env (dict "name" (print $p "SYSFS_ROOT") "value" "/host/sys") -}}
{{- else -}}
{{- $env = append $env (dict "name" (print $p "SYSFS_ROOT") "value" "/sys") -}}
{{- end -}}
{{- $kmsg := "" -}}
{{- with $h.kernelMessages -}}
{{- if hasPrefix (print $dev "/") . -}}
{{- $kmsg = print "/host/dev" (trimPrefix $dev .) -}}
{{- /* The device cgroup lets no container open a character device such as /dev/kmsg
     unless it is privileged; a regular file needs nothing. */ -}}
{{- $privileged = hasPrefix "/dev/" . -}}
{{- else -}}
{{- $volumes = append $volumes (dict "name" "kernel-messages" "hostPath" (dict "path" (dir .) "type" "Directory")) -}}
{{- $mounts = append $mounts (dict "name" "kernel-messages" "mountPath" "/host/kernel-messages" "readOnly" true) -}}
{{- $kmsg = print "/host/kernel-messages/" (base .) -}}
{{- end -}}
{{- end -}}
{{- /* Empty turns the reader off (passed empty rather than left to the component's default). */ -}}
{{- $env = append $env (dict "name" (print $p "KERNEL_MESSAGES") "value" $kmsg) -}}
{{- $state := "" -}}
{{- with $h.stateDir -}}
{{- $volumes = append $volumes (dict "name" "neuron-state" "hostPath" (dict "path" . "type" "DirectoryOrCreate")) -}}
{{- $mounts = append $mounts (dict "name" "neuron-state" "mountPath" .) -}}
{{- $state = printf "%s/hardware-errors.json" (trimSuffix "/" .) -}}
{{- end -}}
{{- $env = append $env (dict "name" (print $p "HARDWARE_ERROR_STATE") "value" $state) -}}
{{- dict "env" $env "mounts" $mounts "volumes" $volumes "privileged" $privileged | toJson -}}
{{- end -}}

{{/* A container securityContext made privileged: the API refuses privileged beside
allowPrivilegeEscalation false, so that key goes. Called with the block's securityContext. */}}
{{- define "neuron.privilegedSecurityContext" -}}
{{- mustMergeOverwrite (omit (. | default dict) "allowPrivilegeEscalation") (dict "privileged" true) | toYaml -}}
{{- end -}}

{{/* The NodeStatus fields besides `conditions` (k8s.io/api core/v1, 1.37): a status write of
the NeuronHealth condition leaves every one of them as it was. `declaredFeatures` exists from
1.35 only: named on 1.34, the API server's type check flags the policy (status.typeChecking)
for a field its NodeStatus does not have. */}}
{{- define "neuron.nodeStatusFields" -}}
{{- $fields := list "capacity" "allocatable" "phase" "addresses" "daemonEndpoints" "nodeInfo" "images"
      "volumesInUse" "volumesAttached" "config" "runtimeHandlers" "features" -}}
{{- if semverCompare ">=1.35-0" .Capabilities.KubeVersion.Version -}}
{{- $fields = append $fields "declaredFeatures" -}}
{{- end -}}
{{- $fields | toJson -}}
{{- end -}}

{{/* A ValidatingAdmissionPolicy and its binding that narrow a component's writes of Node status
(nodes/status, which RBAC grants for every node) to the NeuronHealth condition of the node named
in its pod-bound token. Called with (dict "root" $ "component" "<name>" "who" "The ..."). */}}
{{- define "neuron.nodeHealthPolicy" -}}
{{- $ctx := dict "root" .root "component" .component -}}
{{- $name := printf "%s-node-health" (include "neuron.componentFullname" $ctx) | trunc 63 | trimSuffix "-" -}}
{{- $who := .who -}}
# {{ $who }} writes the NeuronHealth condition of its own Node. RBAC grants nodes/status for
# every node and every field; this policy narrows it to that condition of the node named in its
# pod-bound token: the other conditions and every other status field, the labels and the
# annotations stay as they were.
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {{ $name }}
  labels:
    {{- include "neuron.componentLabels" $ctx | nindent 4 }}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["UPDATE"]
        resources: ["nodes/status"]
  matchConditions:
    - name: the-{{ include "neuron.componentLabel" $ctx }}
      expression: >-
        request.userInfo.username == "system:serviceaccount:{{ include "neuron.namespace" .root }}:{{ include "neuron.serviceAccountName" $ctx }}"
  variables:
    - name: node
      expression: >-
        "authentication.kubernetes.io/node-name" in request.userInfo.extra
        ? request.userInfo.extra["authentication.kubernetes.io/node-name"][0] : ""
  validations:
    - expression: variables.node != ""
      message: {{ printf "%s's token names no node. It must use its pod's own service account token." $who | quote }}
    - expression: object.metadata.name == variables.node
      messageExpression: >-
        {{ printf "%s on node " $who | quote }} + variables.node + " may change the status of that node only."
    - expression: >-
        (has(object.metadata.labels) ? object.metadata.labels : {}) == (has(oldObject.metadata.labels) ? oldObject.metadata.labels : {})
        && (has(object.metadata.annotations) ? object.metadata.annotations : {}) == (has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {})
      message: {{ printf "%s may not change a node's labels or annotations through its status." $who | quote }}
    - expression: >-
        (has(object.status.conditions) ? object.status.conditions.filter(c, c.type != "NeuronHealth") : [])
        == (has(oldObject.status.conditions) ? oldObject.status.conditions.filter(c, c.type != "NeuronHealth") : [])
        {{- range include "neuron.nodeStatusFields" .root | fromJsonArray }}
        && has(object.status.{{ . }}) == has(oldObject.status.{{ . }})
        && (!has(object.status.{{ . }}) || object.status.{{ . }} == oldObject.status.{{ . }})
        {{- end }}
      message: {{ printf "%s may change only the NeuronHealth condition of its node's status." $who | quote }}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {{ $name }}
  labels:
    {{- include "neuron.componentLabels" $ctx | nindent 4 }}
spec:
  policyName: {{ $name }}
  validationActions: ["Deny"]
{{- end -}}
