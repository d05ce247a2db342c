{{/*
Names, labels, images and service accounts shared by every template.
A component is one of "devicePlugin", "extender", "scheduler"; helpers that take one are
called with (dict "root" $ "component" "<name>").
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
{{- $map := dict "devicePlugin" "device-plugin" "extender" "extender" "scheduler" "scheduler" "test" "test" -}}
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

{{/* Pod template labels: component labels, selector labels, then podLabels. */}}
{{- define "neuron.podLabels" -}}
{{- $values := get .root.Values .component -}}
{{- $labels := fromYaml (include "neuron.componentLabels" .) -}}
{{- $labels = mustMergeOverwrite $labels (fromYaml (include "neuron.selectorLabels" .)) -}}
{{- $labels = mustMergeOverwrite $labels ($values.podLabels | default dict) -}}
{{ toYaml $labels }}
{{- end -}}

{{/* Image reference from an image block: repository@digest, else repository:tag (tag defaults to
appVersion). Called with (dict "image" <block> "root" $). */}}
{{- define "neuron.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* kube-scheduler image: the tag defaults to the cluster's vMAJOR.MINOR.PATCH. */}}
{{- define "neuron.scheduler.image" -}}
{{- $image := .Values.scheduler.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else if $image.tag -}}
{{- printf "%s:%s" $image.repository ($image.tag | toString) -}}
{{- else -}}
{{- $version := regexFind "^v?[0-9]+\\.[0-9]+\\.[0-9]+" .Capabilities.KubeVersion.Version -}}
{{- if not $version -}}
{{- fail (printf "scheduler.image.tag is empty and the cluster version %q has no vMAJOR.MINOR.PATCH to derive it from: set scheduler.image.tag." .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- printf "%s:v%s" $image.repository (trimPrefix "v" $version) -}}
{{- end -}}
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

{{/* URL the scheduler uses to call the extender. */}}
{{- define "neuron.extender.url" -}}
{{- printf "http://%s.%s.svc.%s:%d" (include "neuron.extender.serviceName" .) (include "neuron.namespace" .) (trimSuffix "." .Values.clusterDomain) (int .Values.extender.service.port) -}}
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
