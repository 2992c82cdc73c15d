{{/* The name every object of the release carries. */}}
{{- define "signet.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* Labels on every object. */}}
{{- define "signet.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .Values.mode }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* Labels the Deployment, Service and PodDisruptionBudget select on. */}}
{{- define "signet.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount pods run as. */}}
{{- define "signet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "signet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{/* The signet container, shared by both modes. */}}
{{- define "signet.container" -}}
name: signet
image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["serve", "--config", "/etc/signet/signet.yaml"]
env:
  - name: SIGNET_LISTEN
    {{- if eq .Values.mode "sidecar" }}
    value: "127.0.0.1:{{ .Values.ports.proxy }}"
    {{- else }}
    value: "0.0.0.0:{{ .Values.ports.proxy }}"
    {{- end }}
  - name: SIGNET_ADMIN__LISTEN
    value: "0.0.0.0:{{ .Values.ports.admin }}"
  {{- with .Values.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  {{- if ne .Values.mode "sidecar" }}
  - name: http
    containerPort: {{ .Values.ports.proxy }}
    protocol: TCP
  {{- end }}
  - name: signet-admin
    containerPort: {{ .Values.ports.admin }}
    protocol: TCP
{{- if eq .Values.mode "sidecar" }}
startupProbe:
  httpGet:
    path: /readyz
    port: signet-admin
  {{- toYaml .Values.probes.startup | nindent 2 }}
{{- end }}
livenessProbe:
  httpGet:
    path: /healthz
    port: signet-admin
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: signet-admin
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- if and (ne .Values.mode "sidecar") .Values.preStopSleepSeconds }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ .Values.preStopSleepSeconds }}
{{- end }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: signet-config
    mountPath: /etc/signet
    readOnly: true
{{- end }}
