{{/* What the helm test checks: "devicePlugin" (a pod asks for test.count x test.resource through
the device plugin), "dra" (the DRA driver runs without the device plugin: a pod claims one
device of DeviceClass dra.driverName), or empty when no test pod is rendered. */}}
{{- define "neuron.test.mode" -}}
{{- if .Values.test.enabled -}}
{{- if .Values.devicePlugin.enabled -}}
devicePlugin
{{- else if .Values.dra.enabled -}}
dra
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The test pod's image: any image with python3. */}}
{{- define "neuron.test.image" -}}
{{- include "neuron.image" (dict "image" .Values.test.image "root" . "default" "public.ecr.aws/docker/library/python:3.11-slim") -}}
{{- end -}}
