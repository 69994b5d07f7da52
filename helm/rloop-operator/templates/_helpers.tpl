{{/* Chart name, overridable by nameOverride. */}}
{{- define "rloop-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. Cluster-scoped objects (ClusterRole, ClusterRoleBinding)
use it too, so two releases in one cluster need different release names.
*/}}
{{- define "rloop-operator.fullname" -}}
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

{{- define "rloop-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rloop-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rloop-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rloop-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "rloop-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rloop-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name the existing ServiceAccount the operator runs as" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rloop-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "rloop-operator.trainerImage" -}}
{{- printf "%s:%s" .Values.trainerImage.repository (default .Chart.AppVersion .Values.trainerImage.tag) }}
{{- end }}

{{/*
Rules on namespaced resources: granted cluster-wide by the ClusterRole, or per watched
namespace by a Role. Only the verbs that kopf and rloop_operator/kube.py use.
*/}}
{{- define "rloop-operator.namespacedRules" -}}
# kopf lists and watches runs (on.event handlers only: no finalizers, nothing patched on
# the run itself); the reconciler reads one run and merge-patches its status.
- apiGroups: ["rloop.io"]
  resources: ["rloopruns"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["rloop.io"]
  resources: ["rloopruns/status"]
  verbs: ["patch"]
# Children's ownerReferences set blockOwnerDeletion, which the API server's
# OwnerReferencesPermissionEnforcement admission allows only to who may update the
# owner's finalizers (nothing ever writes a finalizer).
- apiGroups: ["rloop.io"]
  resources: ["rloopruns/finalizers"]
  verbs: ["update"]
# The children of every launcher, and the objects launchers check exist (a TrainJob run's
# spec.resources.runtimeRef of kind TrainingRuntime): _generated_rules.tpl, written by
# hack/generate_api.py from the launcher registry.
{{- include "rloop-operator.childRules" . }}
{{- include "rloop-operator.prerequisiteRules" . }}
# A run's storage.volume.claimName: checked to exist before any pod would wait on it.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get"]
# The pods of a run's children, by each launcher's pod selector (and watched by the
# rloop.io/run label): the filter and eval reports and the trainer's failures in their
# termination messages, why pods do not start, whether an earlier attempt's pods still
# run, and which were evicted, preempted or lost with their node. Kueue's Workloads: how
# often Kueue preempted a suspended child. No Secrets: the operator holds no store
# credentials (the phase pods read storage.credentialsSecret themselves).
{{- include "rloop-operator.observedRules" . }}
# Transition events of the reconciler and kopf's warnings.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Cluster-scoped reads, in every mode: kopf lists and watches CRDs to find the RLoopRun and
child resources and to notice them being (re)installed; a TrainJob run's
spec.resources.runtimeRef of kind ClusterTrainingRuntime is checked to exist (generated).
*/}}
{{- define "rloop-operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- include "rloop-operator.clusterPrerequisiteRules" . }}
{{- end }}
