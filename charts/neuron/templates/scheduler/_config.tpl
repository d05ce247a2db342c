{{/* Where the scheduler finds its client certificate for the extender. */}}
{{- define "neuron.scheduler.tlsDir" -}}
/etc/kubernetes/neuron-scheduler-tls
{{- end -}}

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
{{- $aws := eq (include "neuron.implementation" (dict "root" . "component" "extender")) "aws" -}}
{{- /* auto: whole Node objects for AWS's extender 2.31-2.32, as AWS's chart 1.9/1.10 configures it;
node names only for this project's, which keeps its own node cache. */ -}}
{{- $nodeCache := $e.nodeCacheCapable -}}
{{- if eq (toString $nodeCache) "auto" -}}
{{- $nodeCache = not $aws -}}
{{- end -}}
{{- $extender := dict
      "urlPrefix" (include "neuron.extender.url" .)
      "filterVerb" "filter"
      "bindVerb" "bind"
      "enableHTTPS" (include "neuron.tls.enabled" . | eq "true")
      "httpTimeout" $e.httpTimeout
      "nodeCacheCapable" $nodeCache
      "managedResources" $managed
      "ignorable" $e.ignorable -}}
{{- if not $aws -}}
{{- /* AWS's extender serves filter and bind only. */ -}}
{{- $_ := set $extender "prioritizeVerb" "prioritize" -}}
{{- $_ := set $extender "weight" ($e.prioritizeWeight | int) -}}
{{- end -}}
{{- if include "neuron.tls.enabled" . | eq "true" -}}
{{- $dir := include "neuron.scheduler.tlsDir" . -}}
{{- $_ := set $extender "tlsConfig" (dict "certFile" (printf "%s/tls.crt" $dir) "keyFile" (printf "%s/tls.key" $dir) "caFile" (printf "%s/ca.crt" $dir)) -}}
{{- end -}}
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
      "enableProfiling" false
      "profiles" (list (dict "schedulerName" $s.name))
      "clientConnection" (dict "qps" $s.clientConnection.qps "burst" ($s.clientConnection.burst | int))
      "extenders" (list $extender) -}}
{{- if $s.percentageOfNodesToScore -}}
{{- $_ := set $config "percentageOfNodesToScore" ($s.percentageOfNodesToScore | int) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}
