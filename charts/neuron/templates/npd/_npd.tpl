{{/* "true" when node-problem-detector runs: `npd.enabled`, or when that is null, when the
device plugin runs AWS's image, which reads no kernel messages (this project's plugin and DRA
driver find hardware errors themselves). */}}
{{- define "neuron.npd.enabled" -}}
{{- $want := .Values.npd.enabled -}}
{{- if kindIs "invalid" $want -}}
{{- and .Values.devicePlugin.enabled (eq (include "neuron.implementation" (dict "root" . "component" "devicePlugin")) "aws") -}}
{{- else -}}
{{- $want -}}
{{- end -}}
{{- end -}}

{{/* The kernel monitor's configuration, as AWS's chart 1.10 ships it (its four Neuron error
patterns and reasons), with the condition's default sentence. */}}
{{- define "neuron.npd.kernelMonitor" -}}
{{- $rules := list -}}
{{- range $error := list "SRAM_UNCORRECTABLE_ERROR" "NC_UNCORRECTABLE_ERROR" "HBM_UNCORRECTABLE_ERROR" "DMA_ERROR" -}}
{{- $rules = append $rules (dict "type" "permanent" "condition" "NeuronHealth" "reason" (printf "NeuronHasError_%s" $error) "pattern" (printf ".* NEURON_HW_ERR=%s .*" $error)) -}}
{{- end -}}
{{- $condition := dict "type" "NeuronHealth" "reason" "NeuronHasNoError" "message" "Neuron devices have no hardware error" -}}
{{- dict "plugin" "kmsg" "logPath" "/dev/kmsg" "lookback" "5m" "bufferSize" 10 "source" "kernel-monitor" "conditions" (list $condition) "rules" $rules | toPrettyJson -}}
{{- end -}}
