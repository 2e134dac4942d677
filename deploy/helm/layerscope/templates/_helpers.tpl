{{/* The chart's name, or nameOverride. */}}
{{- define "layerscope.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else the release
name when it already contains the chart's name, else RELEASE-NAME.
*/}}
{{- define "layerscope.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "layerscope.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels the DaemonSet, the Service and the ServiceMonitor select on. */}}
{{- define "layerscope.selectorLabels" -}}
app.kubernetes.io/name: {{ include "layerscope.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The standard labels of every object. */}}
{{- define "layerscope.labels" -}}
helm.sh/chart: {{ include "layerscope.chart" . }}
{{ include "layerscope.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "layerscope.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "layerscope.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The agent's version: image.tag, else the chart's appVersion. */}}
{{- define "layerscope.version" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
The image reference: [registry/]repository, then @digest when one is set
(a digest pins the image, the tag is then only informative and dropped),
else :tag.
*/}}
{{- define "layerscope.image" -}}
{{- $repo := .Values.image.repository }}
{{- with .Values.image.registry }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (include "layerscope.version" .) }}
{{- end }}
{{- end }}

{{/*
Whether the Prometheus Operator's CRD of a kind is served: true when the
cluster serves it (helm install, upgrade) or when helm template was given
--api-versions monitoring.coreos.com/v1/KIND.
*/}}
{{- define "layerscope.hasMonitoringCRD" -}}
{{- if .root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) }}true{{ end }}
{{- end }}

{{/* The OTEL_RESOURCE_ATTRIBUTES of the agent's spans. */}}
{{- define "layerscope.resourceAttributes" -}}
{{- $attrs := list "k8s.pod.name=$(POD_NAME)" "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.pod.uid=$(POD_UID)" (printf "service.version=%s" (include "layerscope.version" .)) }}
{{- range $k, $v := .Values.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $attrs }}
{{- end }}
