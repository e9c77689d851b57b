{{/* Names, labels and the few derived values every template shares. */}}

{{/* Chart name, or nameOverride. */}}
{{- define "saslgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: fullnameOverride, else release-chart (just the release when it contains the chart name). */}}
{{- define "saslgate.fullname" -}}
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

{{/* Labels of the pods' selector: never change them after the first install. */}}
{{- define "saslgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "saslgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: service
{{- end }}

{{/* Labels of every object. */}}
{{- define "saslgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "saslgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of the built-in Valkey. */}}
{{- define "saslgate.valkeySelectorLabels" -}}
app.kubernetes.io/name: {{ include "saslgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: valkey
{{- end }}

{{/* Labels of every built-in Valkey object: component valkey, not the service's. */}}
{{- define "saslgate.valkeyLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "saslgate.valkeySelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Valkey image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "saslgate.valkeyImage" -}}
{{- if .Values.valkey.image.digest }}
{{- printf "%s@%s" .Values.valkey.image.repository .Values.valkey.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.valkey.image.repository .Values.valkey.image.tag }}
{{- end }}
{{- end }}

{{/* The Secret holding the built-in Valkey's password (key `password`). */}}
{{- define "saslgate.valkeyAuthSecret" -}}
{{- default (printf "%s-valkey" (include "saslgate.fullname" .)) .Values.valkey.auth.existingSecret }}
{{- end }}

{{/* Labels of the `helm test` pod (the service's NetworkPolicy lets it in). */}}
{{- define "saslgate.testLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "saslgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "saslgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "saslgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "saslgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Secret names: the chart's own Secret when the value is inline, else the existingSecret. */}}
{{- define "saslgate.keytabSecret" -}}
{{- if .Values.keytab.base64 }}{{ include "saslgate.fullname" . }}{{ else }}{{ .Values.keytab.existingSecret }}{{ end }}
{{- end }}

{{- define "saslgate.tokenSecret" -}}
{{- if .Values.token.value }}{{ include "saslgate.fullname" . }}{{ else }}{{ .Values.token.existingSecret }}{{ end }}
{{- end }}

{{- define "saslgate.tlsSecret" -}}
{{- if .Values.tls.cert }}{{ include "saslgate.fullname" . }}{{ else }}{{ .Values.tls.existingSecret }}{{ end }}
{{- end }}

{{- define "saslgate.clientCaSecret" -}}
{{- if .Values.mtls.ca }}{{ include "saslgate.fullname" . }}{{ else }}{{ .Values.mtls.existingSecret }}{{ end }}
{{- end }}

{{/* True (non-empty) when the chart must create its own Secret. */}}
{{- define "saslgate.needsSecret" -}}
{{- if or .Values.keytab.base64 (and .Values.token.enabled .Values.token.value) (and .Values.tls.enabled .Values.tls.cert) (and .Values.mtls.enabled .Values.mtls.ca) }}true{{ end }}
{{- end }}

{{/* True (non-empty) when the built-in Valkey runs: enabled and no external state. */}}
{{- define "saslgate.valkeyEnabled" -}}
{{- if and .Values.valkey.enabled (not .Values.state.url) (not .Values.state.existingSecret) }}true{{ end }}
{{- end }}
