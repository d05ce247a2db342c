{{/* The KubeSchedulerConfiguration of the chart's scheduler, as YAML. */}}
{{- define "neuron.scheduler.config" -}}
{{- $s := .Values.scheduler -}}
{{- $e := $s.extenderConfig -}}
{{- $resources := list "aws.amazon.com/neuron" "aws.amazon.com/neuroncore" -}}
{{- if $e.manageNeuronDevice -}}
{{- $resources = append $resources "aws.amazon.com/neurondevice" -}}
{{- end -}}
{{- $managed := list -}}
{{- range $resources -}}
{{- $managed = append $managed (dict "name" . "ignoredByScheduler" false) -}}
{{- end -}}
{{- $extender := dict
      "urlPrefix" (include "neuron.extender.url" .)
      "filterVerb" "filter"
      "prioritizeVerb" "prioritize"
      "weight" ($e.prioritizeWeight | int)
      "bindVerb" "bind"
      "enableHTTPS" false
      "httpTimeout" $e.httpTimeout
      "nodeCacheCapable" $e.nodeCacheCapable
      "managedResources" $managed
      "ignorable" $e.ignorable -}}
{{- $leader := dict "leaderElect" $s.leaderElection.enabled -}}
{{- if $s.leaderElection.enabled -}}
{{- $_ := set $leader "resourceLock" "leases" -}}
{{- $_ := set $leader "resourceNamespace" (include "neuron.namespace" .) -}}
{{- $_ := set $leader "resourceName" $s.name -}}
{{- $_ := set $leader "leaseDuration" $s.leaderElection.leaseDuration -}}
{{- $_ := set $leader "renewDeadline" $s.leaderElection.renewDeadline -}}
{{- $_ := set $leader "retryPeriod" $s.leaderElection.retryPeriod -}}
{{- end -}}
{{- $config := dict
      "apiVersion" "kubescheduler.config.k8s.io/v1"
      "kind" "KubeSchedulerConfiguration"
      "leaderElection" $leader
      "profiles" (list (dict "schedulerName" $s.name))
      "extenders" (list $extender) -}}
{{- toYaml $config -}}
{{- end -}}
