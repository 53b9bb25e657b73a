{{/* The chart's name, truncated to the 63 characters of a DNS label. */}}
{{- define "ecs-medic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: RELEASE-ecs-medic, or RELEASE when it already contains the chart's name. */}}
{{- define "ecs-medic.fullname" -}}
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

{{- define "ecs-medic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecs-medic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ecs-medic.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ecs-medic.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ecs-medic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ecs-medic.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ecs-medic.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
The policy files of the ConfigMap, as a dict of file name -> text: the bundled policies/*.yaml
(policies/ is a link to the repository's policies folder, followed when the chart is packaged),
then policies.files from the values, which add files or replace bundled ones of the same name.
*/}}
{{- define "ecs-medic.policyFiles" -}}
{{- $files := dict }}
{{- if .Values.policies.bundled }}
{{- range $path, $_ := .Files.Glob "policies/*.{yaml,yml}" }}
{{- $_ := set $files (base $path) ($.Files.Get $path) }}
{{- end }}
{{- end }}
{{- range $name, $text := .Values.policies.files }}
{{- $_ := set $files $name $text }}
{{- end }}
{{- toJson $files }}
{{- end }}

{{- define "ecs-medic.policiesConfigMap" -}}
{{- .Values.policies.existingConfigMap | default (printf "%s-policies" (include "ecs-medic.fullname" .)) }}
{{- end }}

{{/* Refuse settings that would make the agent act twice or misbehave. */}}
{{- define "ecs-medic.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaseTable) }}
{{- fail "replicaCount > 1 needs leaseTable: without leader election every replica would act" }}
{{- end }}
{{- if and (gt (int .Values.shards) 1) (not .Values.leaseTable) }}
{{- fail "shards > 1 needs leaseTable: replicas own shards through leases in that table" }}
{{- end }}
{{- if and .Values.assumeRoleArns (not .Values.assumeRoleExternalId) }}
{{- fail "assumeRoleArns needs assumeRoleExternalId: the member roles accept the agent only with it" }}
{{- end }}
{{- if and .Values.notify.webhookSecretArn .Values.notify.webhookUrlSecret.name }}
{{- fail "notify: set webhookSecretArn or webhookUrlSecret.name, not both" }}
{{- end }}
{{- end }}
