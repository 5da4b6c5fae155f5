{{/* Names are fixed: the operator's defaults (Service, Secret, webhook configurations) use them. */}}
{{- define "parley.name" -}}parley-operator{{- end -}}

{{- define "parley.labels" -}}
app.kubernetes.io/name: parley-operator
app.kubernetes.io/part-of: parley
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "parley.selectorLabels" -}}
app.kubernetes.io/name: parley-operator
{{- end -}}

{{- define "parley.operatorImage" -}}
{{ .Values.image.operator.repository }}:{{ .Values.image.operator.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "parley.sidecarImage" -}}
{{ .Values.image.sidecar.repository }}:{{ .Values.image.sidecar.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "parley.failurePolicy" -}}
{{- $p := . -}}
{{- if not (has $p (list "Ignore" "Fail")) -}}
{{- fail (printf "webhooks failurePolicy must be Ignore or Fail, not %q" $p) -}}
{{- end -}}
{{ $p }}
{{- end -}}

{{- define "parley.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ concat .Values.webhooks.excludeNamespaces (list .Release.Namespace) | uniq | toJson }}
  {{- with .Values.webhooks.namespaceSelectorExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
