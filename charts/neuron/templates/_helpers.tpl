{{/*
Names, labels, images and service accounts shared by every template.
A component is one of "devicePlugin", "extender", "scheduler", "dra", "npd"; helpers that take one are
called with (dict "root" $ "component" "<name>"). "podRecords" (the policy that keeps the pods'
records to the stack, records/admissionpolicy.yaml) has labels only: no values block of its own.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "neuron.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Base name of every object: fullnameOverride, else release name (+ chart name). */}}
{{- define "neuron.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The namespace of every namespaced object. */}}
{{- define "neuron.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{/* chart label value */}}
{{- define "neuron.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Kebab-case component label value for a values block name. */}}
{{- define "neuron.componentLabel" -}}
{{- $map := dict "devicePlugin" "device-plugin" "extender" "extender" "scheduler" "scheduler" "dra" "dra" "test" "test" "podRecords" "pod-records" "npd" "node-problem-detector" -}}
{{- get $map .component -}}
{{- end -}}

{{/* Base name of a component's objects. */}}
{{- define "neuron.componentFullname" -}}
{{- $values := get .root.Values .component -}}
{{- if $values.fullnameOverride -}}
{{- $values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" (include "neuron.fullname" .root) (include "neuron.componentLabel" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "neuron.devicePlugin.fullname" -}}
{{- include "neuron.componentFullname" (dict "root" . "component" "devicePlugin") -}}
{{- end -}}

{{- define "neuron.devicePlugin.daemonSetName" -}}
{{- default (include "neuron.devicePlugin.fullname" .) .Values.devicePlugin.daemonSetNameOverride -}}
{{- end -}}

{{- define "neuron.extender.fullname" -}}
{{- include "neuron.componentFullname" (dict "root" . "component" "extender") -}}
{{- end -}}

{{- define "neuron.npd.fullname" -}}
{{- include "neuron.componentFullname" (dict "root" . "component" "npd") -}}
{{- end -}}

{{- define "neuron.dra.fullname" -}}
{{- include "neuron.componentFullname" (dict "root" . "component" "dra") -}}
{{- end -}}

{{- define "neuron.scheduler.fullname" -}}
{{- include "neuron.componentFullname" (dict "root" . "component" "scheduler") -}}
{{- end -}}

{{/* The scheduler's ConfigMap name; its single key is this name plus ".yaml". */}}
{{- define "neuron.scheduler.configMapName" -}}
{{- printf "%s-config" (include "neuron.scheduler.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object; commonLabels cannot replace the standard ones. */}}
{{- define "neuron.labels" -}}
{{- $labels := dict -}}
{{- range $key, $value := .Values.commonLabels -}}
{{- $_ := set $labels $key ($value | toString) -}}
{{- end -}}
{{- $_ := set $labels "helm.sh/chart" (include "neuron.chart" .) -}}
{{- $_ := set $labels "app.kubernetes.io/name" (include "neuron.name" .) -}}
{{- $_ := set $labels "app.kubernetes.io/instance" .Release.Name -}}
{{- if .Chart.AppVersion -}}
{{- $_ := set $labels "app.kubernetes.io/version" (.Chart.AppVersion | toString) -}}
{{- end -}}
{{- $_ := set $labels "app.kubernetes.io/managed-by" .Release.Service -}}
{{- with .Values.partOf -}}
{{- $_ := set $labels "app.kubernetes.io/part-of" . -}}
{{- end -}}
{{ toYaml $labels }}
{{- end -}}

{{/* Labels of a component's objects. */}}
{{- define "neuron.componentLabels" -}}
{{- $labels := fromYaml (include "neuron.labels" .root) -}}
{{- $_ := set $labels "app.kubernetes.io/component" (include "neuron.componentLabel" .) -}}
{{ toYaml $labels }}
{{- end -}}

{{/* Selector labels of a component: the override when given, else name/instance/component. */}}
{{- define "neuron.selectorLabels" -}}
{{- $values := get .root.Values .component -}}
{{- if $values.selectorLabelsOverride -}}
{{ toYaml $values.selectorLabelsOverride }}
{{- else -}}
app.kubernetes.io/name: {{ include "neuron.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ include "neuron.componentLabel" . }}
{{- end -}}
{{- end -}}

{{/* Pod template labels: component labels, selector labels, then podLabels. Without the chart's
and the app's versions: a chart bump that changes nothing else must not roll every node. */}}
{{- define "neuron.podLabels" -}}
{{- $values := get .root.Values .component -}}
{{- $labels := omit (fromYaml (include "neuron.componentLabels" .)) "helm.sh/chart" "app.kubernetes.io/version" -}}
{{- $labels = mustMergeOverwrite $labels (fromYaml (include "neuron.selectorLabels" .)) -}}
{{- $labels = mustMergeOverwrite $labels ($values.podLabels | default dict) -}}
{{ toYaml $labels }}
{{- end -}}

{{/* What runs a component ("aws" or "neuron-k8s"): its own implementation, else the chart's.
Called with (dict "root" $ "component" "<name>"). */}}
{{- define "neuron.implementation" -}}
{{- $values := get .root.Values .component -}}
{{- default .root.Values.implementation $values.implementation -}}
{{- end -}}

{{/* AWS's images of the Neuron SDK, pinned (Neuron helm chart 1.10.0). */}}
{{- define "neuron.awsImages" -}}
devicePlugin: public.ecr.aws/neuron/neuron-device-plugin:2.32.0.0
extender: public.ecr.aws/neuron/neuron-scheduler:2.32.0.0
{{- end -}}

{{/* The instance types AWS's device plugin runs on, pinned with its image: the `neuronInstances`
of AWS's Neuron helm chart 1.10.0 (SageMaker HyperPod's `ml.*` types and trn3 included), as JSON. */}}
{{- define "neuron.awsInstanceTypes" -}}
{{- list
      "trn1.2xlarge" "trn1.32xlarge" "trn1n.32xlarge"
      "trn2.3xlarge" "trn2.48xlarge" "trn2u.48xlarge"
      "trn3.48xlarge" "trn3n.48xlarge" "trn3en.24xlarge" "trn3s-es.48xlarge"
      "inf1.xlarge" "inf1.2xlarge" "inf1.6xlarge" "inf1.24xlarge"
      "inf2.xlarge" "inf2.8xlarge" "inf2.24xlarge" "inf2.48xlarge"
      "ml.inf2.xlarge" "ml.inf2.8xlarge" "ml.inf2.24xlarge" "ml.inf2.48xlarge"
      "ml.trn1.2xlarge" "ml.trn1.32xlarge" "ml.trn1n.32xlarge" | toJson -}}
{{- end -}}

{{/* The instance types this project's device plugin knows the topology of (neuron_k8s.topology's
table; `dra.instanceTypes` defaults to the same list), as JSON. */}}
{{- define "neuron.knownInstanceTypes" -}}
{{- list
      "inf1.xlarge" "inf1.2xlarge" "inf1.6xlarge" "inf1.24xlarge"
      "inf2.xlarge" "inf2.8xlarge" "inf2.24xlarge" "inf2.48xlarge"
      "trn1.2xlarge" "trn1.32xlarge" "trn1n.32xlarge" "trn2.48xlarge" "trn2u.48xlarge" | toJson -}}
{{- end -}}

{{/* The device plugin's `instanceTypes`, or when that is null the list of its implementation, as
JSON. */}}
{{- define "neuron.devicePlugin.instanceTypes" -}}
{{- $types := .Values.devicePlugin.instanceTypes -}}
{{- if kindIs "invalid" $types -}}
{{- if eq (include "neuron.implementation" (dict "root" . "component" "devicePlugin")) "aws" -}}
{{- $types = include "neuron.awsInstanceTypes" . | fromJsonArray -}}
{{- else -}}
{{- $types = include "neuron.knownInstanceTypes" . | fromJsonArray -}}
{{- end -}}
{{- end -}}
{{- $types | toJson -}}
{{- end -}}

{{/* The registry host a repository names: its first path part when that has a "." or a ":" or
is "localhost" (Docker's rule), else empty (Docker Hub). */}}
{{- define "neuron.registryHost" -}}
{{- $parts := splitList "/" . -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $first -}}
{{- end -}}
{{- end -}}

{{/* The repository of an image reference (without its @digest or :tag). */}}
{{- define "neuron.imageRepository" -}}
{{- regexReplaceAll ":[^:/]+$" (first (splitList "@" .)) "" -}}
{{- end -}}

{{/* The repository a pod pulls. Called with (dict "root" $ "repository" <the value, or empty>
"default" <the chart's repository>). A repository set in the values (other than the default)
is pulled as written when it names a registry host, and gets global.imageRegistry in front when
it names none. The chart's default gets, in place of its registry host, that host's
global.imageRegistryMap prefix (an ECR pull-through cache has one per upstream), else
global.imageRegistry, else stays as it is. (Before chart 0.12, global.imageRegistry replaced the
host of a repository set in the values too.) */}}
{{- define "neuron.repository" -}}
{{- $registry := trimSuffix "/" (.root.Values.global.imageRegistry | default "") -}}
{{- $map := .root.Values.global.imageRegistryMap | default dict -}}
{{- $default := .default | default "" -}}
{{- $repo := .repository | default $default -}}
{{- $host := include "neuron.registryHost" $repo -}}
{{- if ne $repo $default -}}
{{- if and $registry (not $host) -}}
{{- $repo = printf "%s/%s" $registry $repo -}}
{{- end -}}
{{- else -}}
{{- $path := $repo -}}
{{- $prefix := "" -}}
{{- if $host -}}
{{- $path = trimPrefix (printf "%s/" $host) $repo -}}
{{- $prefix = trimSuffix "/" (get $map $host | default "") -}}
{{- end -}}
{{- if $prefix -}}
{{- $repo = printf "%s/%s" $prefix $path -}}
{{- else if $registry -}}
{{- $repo = printf "%s/%s" $registry $path -}}
{{- end -}}
{{- end -}}
{{- $repo -}}
{{- end -}}

{{/* Image reference from an image block: repository@digest, else repository:tag. Called with
(dict "image" <block> "root" $ ["default" "<repository>:<tag>"]); an empty tag is the default's
tag while the repository is the default one, else the chart's appVersion. */}}
{{- define "neuron.image" -}}
{{- $default := .default | default "" -}}
{{- $defaultRepo := "" -}}
{{- $defaultTag := "" -}}
{{- if $default -}}
{{- $defaultRepo = regexReplaceAll ":[^:/]+$" $default "" -}}
{{- $defaultTag = trimPrefix (printf "%s:" $defaultRepo) $default -}}
{{- end -}}
{{- $given := .image.repository | default "" -}}
{{- if not (or $given $defaultRepo) -}}
{{- fail "an image repository is empty and has no default: set its image.repository." -}}
{{- end -}}
{{- $repo := include "neuron.repository" (dict "root" .root "repository" $given "default" $defaultRepo) -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- if and $given (ne $given $defaultRepo) -}}
{{- $defaultTag = "" -}}
{{- end -}}
{{- $tag := .image.tag | default $defaultTag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" $repo ($tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* The image of the device plugin, the extender or the DRA driver, by implementation. The chart
runs no AWS DRA driver (validation.yaml refuses one): the DRA driver's default is always
neuron-k8s. */}}
{{- define "neuron.componentImage" -}}
{{- $values := get .root.Values .component -}}
{{- $default := "" -}}
{{- if and (eq (include "neuron.implementation" .) "aws") (ne .component "dra") -}}
{{- $default = get (include "neuron.awsImages" .root | fromYaml) .component -}}
{{- else -}}
{{- $default = printf "neuron-k8s:%s" .root.Chart.AppVersion -}}
{{- end -}}
{{- include "neuron.image" (dict "image" $values.image "root" .root "default" $default) -}}
{{- end -}}

{{/* Pull secrets of a pod: global.imagePullSecrets, then the component's. */}}
{{- define "neuron.imagePullSecrets" -}}
{{- $all := concat (.root.Values.global.imagePullSecrets | default list) (.secrets | default list) -}}
{{- with $all -}}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* kube-scheduler image: the tag defaults to the cluster's vMAJOR.MINOR.PATCH. */}}
{{- define "neuron.scheduler.image" -}}
{{- $image := .Values.scheduler.image -}}
{{- if not $image.repository -}}
{{- fail "scheduler.image.repository is empty: name the kube-scheduler image, such as registry.k8s.io/kube-scheduler." -}}
{{- end -}}
{{- $repository := include "neuron.repository" (dict "root" . "repository" $image.repository "default" "registry.k8s.io/kube-scheduler") -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else if $image.tag -}}
{{- printf "%s:%s" $repository ($image.tag | toString) -}}
{{- else -}}
{{- $version := regexFind "^v?[0-9]+\\.[0-9]+\\.[0-9]+" .Capabilities.KubeVersion.Version -}}
{{- if not $version -}}
{{- fail (printf "scheduler.image.tag is empty and the cluster version %q has no vMAJOR.MINOR.PATCH to derive it from: set scheduler.image.tag." .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- printf "%s:v%s" $repository (trimPrefix "v" $version) -}}
{{- end -}}
{{- end -}}

{{/* "true" when my-scheduler's tag is Helm's own default version: no tag or digest is set, no
cluster answered (lookup answers only when Helm talks to one), and the version is the one Helm
assumes without --kube-version (that of the client library it was built with). An explicit
--kube-version of that same version looks the same to a template (every .Capabilities field is
equal), so the chart renders either and NOTES.txt warns. */}}
{{- define "neuron.scheduler.tagIsHelmDefault" -}}
{{- $image := .Values.scheduler.image -}}
{{- $helmDefault := printf "%s.0" (.Capabilities.HelmVersion.KubeClientVersion | default "") -}}
{{- and (not $image.tag) (not $image.digest) (eq .Capabilities.KubeVersion.Version $helmDefault) (empty (lookup "v1" "Namespace" "" "kube-system")) -}}
{{- end -}}

{{/* ServiceAccount name of a component. */}}
{{- define "neuron.serviceAccountName" -}}
{{- $values := get .root.Values .component -}}
{{- if $values.serviceAccount.create -}}
{{- default (include "neuron.componentFullname" .) $values.serviceAccount.name -}}
{{- else -}}
{{- required (printf "%s.serviceAccount.name is required when %s.serviceAccount.create is false: name the existing ServiceAccount the pods should run as." .component .component) $values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Extender Service name. */}}
{{- define "neuron.extender.serviceName" -}}
{{- include "neuron.extender.fullname" . -}}
{{- end -}}

{{/* Node label the extender reads instance types from: its own value, else the plugin's. */}}
{{- define "neuron.extender.instanceTypeLabel" -}}
{{- $dp := .Values.devicePlugin -}}
{{- if .Values.extender.instanceTypeLabel -}}
{{- .Values.extender.instanceTypeLabel -}}
{{- else if and $dp.enabled $dp.fake.enabled $dp.fake.instanceTypeLabel -}}
{{- $dp.fake.instanceTypeLabel -}}
{{- else -}}
{{- $dp.instanceTypeLabel -}}
{{- end -}}
{{- end -}}

{{/* The extender Service's DNS names, shortest first. */}}
{{- define "neuron.extender.dnsNames" -}}
{{- $svc := printf "%s.%s.svc" (include "neuron.extender.serviceName" .) (include "neuron.namespace" .) -}}
{{- list (include "neuron.extender.serviceName" .) $svc (printf "%s.%s" $svc (trimSuffix "." .Values.clusterDomain)) | toJson -}}
{{- end -}}

{{/* URL the scheduler uses to call the extender. */}}
{{- define "neuron.extender.url" -}}
{{- $scheme := ternary "https" "http" (include "neuron.tls.enabled" . | eq "true") -}}
{{- printf "%s://%s:%d" $scheme (last (include "neuron.extender.dnsNames" . | fromJsonArray)) (int .Values.extender.service.port) -}}
{{- end -}}

{{/* Where the mutual TLS certificates come from (auto resolved): chart, cert-manager, secrets
or disabled. AWS's extender serves plain HTTP only. */}}
{{- define "neuron.tls.mode" -}}
{{- $mode := .Values.extender.tls.mode -}}
{{- if eq $mode "auto" -}}
{{- $mode = ternary "disabled" "chart" (eq (include "neuron.implementation" (dict "root" . "component" "extender")) "aws") -}}
{{- end -}}
{{- $mode -}}
{{- end -}}

{{/* "true" when my-scheduler and the extender talk mutual TLS. */}}
{{- define "neuron.tls.enabled" -}}
{{- ne (include "neuron.tls.mode" .) "disabled" -}}
{{- end -}}

{{/* Secret of the extender's server certificate and its clients' CA. */}}
{{- define "neuron.tls.serverSecret" -}}
{{- if eq (include "neuron.tls.mode" .) "secrets" -}}
{{- .Values.extender.tls.serverSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "neuron.extender.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Secret of the CA the extender issues with in mode "chart" (only the extender reads it). */}}
{{- define "neuron.tls.caSecret" -}}
{{- printf "%s-tls-ca" (include "neuron.extender.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Secret of my-scheduler's client certificate and the extender's CA. Mode "chart": the
extender writes it (plugin-src extender/clustercerts.py), under a name no Helm release of this
chart up to 0.12 owned, so that an upgrade from one, deleting the Secrets it rendered, cannot
delete it. */}}
{{- define "neuron.tls.clientSecret" -}}
{{- $mode := include "neuron.tls.mode" . -}}
{{- if eq $mode "secrets" -}}
{{- .Values.extender.tls.clientSecret -}}
{{- else if eq $mode "chart" -}}
{{- printf "%s-client-cert" (include "neuron.scheduler.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-extender-client" (include "neuron.scheduler.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Probe timing fields of a probe values block, as YAML lines (empty when none is set). */}}
{{- define "neuron.probeTiming" -}}
{{- $out := dict -}}
{{- range $key := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "failureThreshold" -}}
{{- if hasKey $ $key -}}
{{- $_ := set $out $key (get $ $key | int) -}}
{{- end -}}
{{- end -}}
{{- if $out -}}
{{- toYaml $out -}}
{{- end -}}
{{- end -}}

{{/* Whether the device plugin withholds IDs held through the other resource ("true"/"false"):
auto is off when the chart's extender and scheduler place the Neuron pods. */}}
{{- define "neuron.devicePlugin.withholdInUse" -}}
{{- $w := .Values.devicePlugin.withholdInUse -}}
{{- if eq (toString $w) "auto" -}}
{{- not (and .Values.extender.enabled .Values.scheduler.enabled) -}}
{{- else -}}
{{- $w -}}
{{- end -}}
{{- end -}}

{{/* A list of words as English: "a", "a and b", "a, b and c". */}}
{{- define "neuron.andList" -}}
{{- if gt (len .) 1 -}}
{{- printf "%s and %s" (join ", " (initial .)) (last .) -}}
{{- else -}}
{{- join "" . -}}
{{- end -}}
{{- end -}}

{{/* Seconds in a Go duration such as 10s, 1m30s or 500ms. */}}
{{- define "neuron.durationSeconds" -}}
{{- $units := dict "ns" 1e-9 "us" 1e-6 "µs" 1e-6 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9.]+(ns|us|µs|ms|s|m|h)" . -1 -}}
{{- $n := regexFind "^[0-9.]+" . -}}
{{- $total = addf $total (mulf (float64 $n) (get $units (trimPrefix $n .))) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/* "true" when the ValidatingAdmissionPolicies that narrow the plugin's, the extender's and the
DRA driver's writes are rendered. `auto` is on: every release the chart accepts (kubeVersion)
serves admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy; the value stays accepted so
existing values files keep working. */}}
{{- define "neuron.admissionPolicies" -}}
{{- $want := .Values.admissionPolicies.enabled -}}
{{- if eq (toString $want) "auto" -}}
{{- true -}}
{{- else -}}
{{- $want -}}
{{- end -}}
{{- end -}}

{{/* Whether a Prometheus Operator object of `kind` is rendered: its value (true, false or auto,
meaning when the cluster serves the API). Called with (dict "root" $ "want" <value> "kind" "<Kind>"). */}}
{{- define "neuron.monitorEnabled" -}}
{{- if eq (toString .want) "auto" -}}
{{- .root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) -}}
{{- else -}}
{{- .want -}}
{{- end -}}
{{- end -}}

{{/* Which Prometheus Operator objects are rendered, as JSON {"pod": <bool>, "service": <bool>}:
each by its value (monitorEnabled); the ServiceMonitor needs metrics.service.enabled too, and at
`auto` gives way to PodMonitors that are rendered, so that no target is scraped twice
(validation.yaml refuses both forced on). */}}
{{- define "neuron.monitors" -}}
{{- $m := .Values.metrics -}}
{{- $pod := eq (include "neuron.monitorEnabled" (dict "root" . "want" $m.podMonitor.enabled "kind" "PodMonitor")) "true" -}}
{{- $service := and $m.service.enabled (eq (include "neuron.monitorEnabled" (dict "root" . "want" $m.serviceMonitor.enabled "kind" "ServiceMonitor")) "true") -}}
{{- if and $pod (eq (toString $m.serviceMonitor.enabled) "auto") -}}
{{- $service = false -}}
{{- end -}}
{{- dict "pod" $pod "service" $service | toJson -}}
{{- end -}}

{{/* The port of a component's /metrics: the DRA driver serves it on its health port. */}}
{{- define "neuron.metricsPort" -}}
{{- $values := get .root.Values .component -}}
{{- ternary $values.healthPort $values.httpPort (eq .component "dra") -}}
{{- end -}}

{{/* The components whose metrics the chart exposes: enabled and running neuron-k8s. */}}
{{- define "neuron.metricsComponents" -}}
{{- $out := list -}}
{{- range $c := list "devicePlugin" "extender" "dra" -}}
{{- if and (get $.Values $c).enabled (eq (include "neuron.implementation" (dict "root" $ "component" $c)) "neuron-k8s") -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The affinity of a DaemonSet on Neuron nodes (the device plugin's, the DRA driver's), as YAML
(empty when there is none): the block's `affinity`, plus a required node affinity on its instance
types (`instanceTypes` of the call, else of the block) under `instanceTypeLabel` unless that gives a
nodeAffinity; then a `NotIn` expression in every required nodeSelectorTerm for the block's
`excludedComputeTypes` (label `eks.amazonaws.com/compute-type`) and for each label of `exclude` (a
map), so that the pods keep off the nodes those select. Called with
(dict "values" <block> "exclude" <map> ["instanceTypes" <list>]). */}}
{{- define "neuron.neuronNodeAffinity" -}}
{{- $v := .values -}}
{{- $types := hasKey . "instanceTypes" | ternary .instanceTypes $v.instanceTypes -}}
{{- $affinity := deepCopy ($v.affinity | default dict) -}}
{{- if and $types (not (hasKey $affinity "nodeAffinity")) -}}
{{- $term := dict "matchExpressions" (list (dict "key" $v.instanceTypeLabel "operator" "In" "values" $types)) -}}
{{- $_ := set $affinity "nodeAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (dict "nodeSelectorTerms" (list $term))) -}}
{{- end -}}
{{- $notIn := list -}}
{{- with $v.excludedComputeTypes -}}
{{- $notIn = append $notIn (dict "key" "eks.amazonaws.com/compute-type" "operator" "NotIn" "values" .) -}}
{{- end -}}
{{- range $key := keys (.exclude | default dict) | sortAlpha -}}
{{- $notIn = append $notIn (dict "key" $key "operator" "NotIn" "values" (list (get $.exclude $key | toString))) -}}
{{- end -}}
{{- if $notIn -}}
{{- $node := get $affinity "nodeAffinity" | default dict -}}
{{- $required := get $node "requiredDuringSchedulingIgnoredDuringExecution" | default dict -}}
{{- $terms := list -}}
{{- range (get $required "nodeSelectorTerms" | default (list (dict))) -}}
{{- $term := deepCopy (. | default dict) -}}
{{- $_ := set $term "matchExpressions" (concat (get $term "matchExpressions" | default list) $notIn) -}}
{{- $terms = append $terms $term -}}
{{- end -}}
{{- $_ := set $required "nodeSelectorTerms" $terms -}}
{{- $_ := set $node "requiredDuringSchedulingIgnoredDuringExecution" $required -}}
{{- $_ := set $affinity "nodeAffinity" $node -}}
{{- end -}}
{{- with $affinity -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}

{{/* The labels the device plugin keeps off: dra.nodeSelector while the DRA driver runs too (AWS:
a node must not run both), as JSON. */}}
{{- define "neuron.devicePlugin.excludedLabels" -}}
{{- if .Values.dra.enabled -}}
{{- .Values.dra.nodeSelector | default dict | toJson -}}
{{- else -}}
{{- dict | toJson -}}
{{- end -}}
{{- end -}}

{{/* What the device plugin's and the DRA driver's pods both mount from the node, after their
own directories: the trn2 logical core config (`awsDirPath`), the fake health file's directory,
and the block's extras. Called with the block (`.Values.devicePlugin` or `.Values.dra`); the
volume mounts of the container, then the pod's volumes, as YAML lists (empty when none). */}}
{{- define "neuron.nodeAgentMounts" -}}
{{- if .awsDirPath }}
- name: opt-aws
  mountPath: {{ .awsDirPath }}
  readOnly: true
{{- end }}
{{- if and .fake.enabled .fake.healthFile }}
- name: fake-health
  mountPath: {{ dir .fake.healthFile }}
  readOnly: true
{{- end }}
{{- with .extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "neuron.nodeAgentVolumes" -}}
{{- if .awsDirPath }}
- name: opt-aws
  hostPath:
    path: {{ .awsDirPath }}
    type: DirectoryOrCreate
{{- end }}
{{- if and .fake.enabled .fake.healthFile }}
- name: fake-health
  hostPath:
    path: {{ dir .fake.healthFile }}
    type: DirectoryOrCreate
{{- end }}
{{- with .extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}
