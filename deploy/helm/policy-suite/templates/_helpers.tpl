{{/*
What the chart knows about the six binaries, in one table (as tools/dev's SERVICES):
  database  the service keeps state through pg::StorageOptions (store, database_url, ...):
            it gets POLICY_<SVC>_STORE and, with store=postgres, the database URL, PGPASSWORD
            and a migration Job.
  secrets   its settings registered with config::Sensitivity::kSecret, each read from key
            <setting> of the service's Secret: true = required (the binary refuses to start
            without it), false = optional (secretKeyRef optional: the setting stays unset).
  migratesWithoutSecrets  its --migrate_only needs none of its secrets: its migration Job
            gets none.
  calls     the services it calls: peer -> the setting holding the peer's host:port.
  files     settings naming a file: setting -> the value holding the file's content (mounted
            from the service's ConfigMap at /etc/policy-suite/config/<file>) and, with
            `secret`, the value naming a Secret's key to mount instead (at
            /etc/policy-suite/secret-files/<file>).
  podName   a setting that gets the pod's name.
  ignored   deprecated settings the binary no longer has: values.schema.json accepts them
            under config and they are not passed on (the binary would ignore them, warning).
Callers of a service (for its NetworkPolicy) are those whose `calls` name it.
*/}}
{{- define "policy-suite.components" -}}
keys:
  database: true
  secrets: {pepper: true}
  calls: {audit: audit_target}
authz:
  database: true
  calls: {keys: keys_address, audit: audit_target}
  files: {bootstrap_org_file: {value: bootstrapOrg, file: org.yaml, secret: bootstrapOrgSecret}}
pii:
  secrets: {pseudonym_key: false}
  files: {recognizers_file: {value: recognizers, file: recognizers.yaml}}
region:
  database: true
  calls: {audit: audit_target}
  podName: replica
  ignored: [watch_heartbeat]
audit:
  database: true
  secrets: {signing_key: true, subject_key: true}
  migratesWithoutSecrets: true
  ignored: [max_staleness, watch_heartbeat]
edge:
  calls:
    keys: keys_target
    authz: authz_target
    pii: pii_target
    region: region_target
    audit: audit_target
{{- end }}

{{/* The ports every pod serves (fixed: the probes, policies and tests rely on them). */}}
{{- define "policy-suite.grpcPort" -}}50051{{- end }}
{{- define "policy-suite.healthPort" -}}50050{{- end }}
{{- define "policy-suite.metricsPort" -}}9090{{- end }}

{{- define "policy-suite.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name when it already contains the chart's name. */}}
{{- define "policy-suite.fullname" -}}
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

{{/* The name of a component's objects: (dict "root" $ "name" "keys") -> <fullname>-keys. */}}
{{- define "policy-suite.componentName" -}}
{{- printf "%s-%s" (include "policy-suite.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Service with a component's health and metrics ports (.root, .name): its own, but for
an edge whose Service is a NodePort or LoadBalancer, which carries gRPC alone, "<...>-edge-internal"
(service.yaml). Prometheus names the scraped job after it. */}}
{{- define "policy-suite.internalServiceName" -}}
{{- $name := include "policy-suite.componentName" . }}
{{- if and (eq .name "edge") (ne .root.Values.edge.service.type "ClusterIP") }}
{{- printf "%s-internal" ($name | trunc 54 | trimSuffix "-") }}
{{- else }}
{{- $name }}
{{- end }}
{{- end }}

{{/* host:port of a component's gRPC port inside the cluster (the name certificates carry). */}}
{{- define "policy-suite.address" -}}
{{- printf "%s.%s.svc:%s" (include "policy-suite.componentName" .) .root.Release.Namespace (include "policy-suite.grpcPort" .) }}
{{- end }}

{{/* Selector labels of a component: (dict "root" $ "name" "keys"). Never change them:
Deployment selectors are immutable. */}}
{{- define "policy-suite.selectorLabels" -}}
app.kubernetes.io/name: {{ include "policy-suite.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Kubernetes' recommended labels: (dict "root" $ "name" "keys"). */}}
{{- define "policy-suite.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "policy-suite.podLabels" . }}
{{- end }}

{{/* The labels of a Deployment's pods: the recommended ones but helm.sh/chart, so that a new
chart version that changes nothing of a pod does not roll it. */}}
{{- define "policy-suite.podLabels" -}}
{{ include "policy-suite.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/part-of: policy-suite
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "policy-suite.image" -}}
{{- $image := .Values.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository ($image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Whether a component keeps its state in PostgreSQL: (dict "root" $ "name" "keys"). */}}
{{- define "policy-suite.usesPostgres" -}}
{{- $facts := index (include "policy-suite.components" .root | fromYaml) .name }}
{{- if and $facts.database (eq .root.Values.store "postgres") }}true{{ end }}
{{- end }}

{{/* The replica count a component may have: 1 for a database service on the memory store
(its state lives in the one process), else its replicas value. */}}
{{- define "policy-suite.replicas" -}}
{{- $facts := index (include "policy-suite.components" .root | fromYaml) .name }}
{{- if and $facts.database (eq .root.Values.store "memory") }}1{{ else }}{{ (index .root.Values .name).replicas }}{{ end }}
{{- end }}

{{/* "true" when a HorizontalPodAutoscaler owns the component's replica count. */}}
{{- define "policy-suite.autoscaled" -}}
{{- $facts := index (include "policy-suite.components" .root | fromYaml) .name }}
{{- if and (index .root.Values .name).autoscaling.enabled (not (and $facts.database (eq .root.Values.store "memory"))) }}true{{ end }}
{{- end }}

{{/* The database settings of a component: `database` with the component's own `database`
overrides, and existingSecret defaulted; with "mode" "migrate" (its migration Job) and
migrations.database.user set, that role's user, existingSecret and passwordKey instead (the
rest stays the component's). YAML; read with fromYaml. */}}
{{- define "policy-suite.database" -}}
{{- $db := mergeOverwrite (deepCopy .root.Values.database) (deepCopy ((index .root.Values .name).database | default dict)) }}
{{- if not $db.existingSecret }}
{{- $_ := set $db "existingSecret" (printf "%s-database" (include "policy-suite.fullname" .root)) }}
{{- end }}
{{- $migrator := .root.Values.migrations.database }}
{{- if and (eq (.mode | default "") "migrate") $migrator.user }}
{{- $_ := set $db "user" $migrator.user }}
{{- $_ := set $db "existingSecret" $migrator.existingSecret }}
{{- $_ := set $db "passwordKey" $migrator.passwordKey }}
{{- end }}
{{- toYaml $db }}
{{- end }}

{{/* "true" when a component's secret setting must be in its Secret: (dict "root" $ "name"
"pii" "setting" "pseudonym_key" "required" <components' secrets value>). pii's optional
pseudonym_key is required while the edge's redaction_operator is hash: the edge refuses to
serve (unready) without it, so pii's pod is rather not started, naming the missing key. */}}
{{- define "policy-suite.secretRequired" -}}
{{- if or .required (and (eq .name "pii") (eq .setting "pseudonym_key") (eq (toString (.root.Values.edge.config.redaction_operator | default "")) "hash")) }}true{{ end }}
{{- end }}

{{/* The Secret holding a component's secret settings. */}}
{{- define "policy-suite.secretName" -}}
{{- (index .root.Values .name).existingSecret | default (include "policy-suite.componentName" .) }}
{{- end }}

{{/* The Secret holding a component's certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "policy-suite.tlsSecretName" -}}
{{- (index .root.Values .name).tls.secretName | default .root.Values.tls.secretName | default (printf "%s-tls" (include "policy-suite.fullname" .root)) }}
{{- end }}

{{/* A CPU quantity ("2", 2, "1.5", "500m") as whole cores, rounded up, at least 1. */}}
{{- define "policy-suite.cpuCores" -}}
{{- $text := toString . }}
{{- $cores := 0.0 }}
{{- if hasSuffix "m" $text }}
{{- $cores = divf (float64 (trimSuffix "m" $text)) 1000.0 }}
{{- else }}
{{- $cores = float64 $text }}
{{- end }}
{{- max 1 (int64 (ceil $cores)) }}
{{- end }}

{{/* A setting's value as the binaries parse it: YAML numbers arrive as float64, which would
print as 1e+06; settings take integers. */}}
{{- define "policy-suite.settingValue" -}}
{{- if kindIs "float64" . }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/*
The environment of a component's container: (dict "root" $ "name" "keys" "mode" "serve") for
the service, "migrate" for its migration Job (the binaries validate their whole configuration,
secrets included, before migrating, except those that migratesWithoutSecrets; a migration needs
no ports, peers, files or certificates).
Secret settings and the database password only ever come from secretKeyRef.
*/}}
{{- /* A service's shutdown settings (.root, .name): its own shutdownDelay and
terminationGracePeriodSeconds when its block sets them, else the global ones; the ...Name
forms say which value that is, for messages. */}}
{{- define "policy-suite.shutdownDelay" -}}
{{- $values := index .root.Values .name }}
{{- ternary $values.shutdownDelay .root.Values.shutdownDelay (hasKey $values "shutdownDelay") }}
{{- end }}
{{- define "policy-suite.shutdownDelayName" -}}
{{- ternary (printf "%s.shutdownDelay" .name) "shutdownDelay" (hasKey (index .root.Values .name) "shutdownDelay") }}
{{- end }}
{{- define "policy-suite.terminationGracePeriodSeconds" -}}
{{- $values := index .root.Values .name }}
{{- ternary $values.terminationGracePeriodSeconds .root.Values.terminationGracePeriodSeconds (hasKey $values "terminationGracePeriodSeconds") }}
{{- end }}
{{- define "policy-suite.terminationGracePeriodSecondsName" -}}
{{- ternary (printf "%s.terminationGracePeriodSeconds" .name) "terminationGracePeriodSeconds" (hasKey (index .root.Values .name) "terminationGracePeriodSeconds") }}
{{- end }}

{{- define "policy-suite.env" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $serve := eq .mode "serve" }}
{{- $facts := index (include "policy-suite.components" $root | fromYaml) $name }}
{{- $values := index $root.Values $name }}
{{- $prefix := printf "POLICY_%s_" (upper $name) }}
{{- if $serve }}
- name: {{ $prefix }}LISTEN
  value: "0.0.0.0:{{ include "policy-suite.grpcPort" . }}"
- name: {{ $prefix }}HEALTH_LISTEN
  value: "0.0.0.0:{{ include "policy-suite.healthPort" . }}"
- name: {{ $prefix }}METRICS_LISTEN
  value: "0.0.0.0:{{ include "policy-suite.metricsPort" . }}"
- name: {{ $prefix }}MAX_CONNECTION_AGE
  value: {{ $root.Values.maxConnectionAge | quote }}
- name: {{ $prefix }}MAX_CONCURRENT_STREAMS
  value: {{ include "policy-suite.settingValue" $root.Values.maxConcurrentStreams | quote }}
- name: {{ $prefix }}MAX_CONNECTION_IDLE
  value: {{ $root.Values.maxConnectionIdle | quote }}
- name: {{ $prefix }}KEEPALIVE_MIN_PING_INTERVAL
  value: {{ $root.Values.keepalive.minPingInterval | quote }}
- name: {{ $prefix }}KEEPALIVE_PERMIT_WITHOUT_CALLS
  value: {{ $root.Values.keepalive.permitWithoutCalls | quote }}
- name: {{ $prefix }}SHUTDOWN_DELAY
  value: {{ include "policy-suite.shutdownDelay" (dict "root" $root "name" $name) | quote }}
{{- end }}
{{- if $facts.database }}
- name: {{ $prefix }}STORE
  value: {{ $root.Values.store | quote }}
{{- end }}
{{- if include "policy-suite.usesPostgres" . }}
{{- $db := include "policy-suite.database" . | fromYaml }}
- name: {{ $prefix }}DATABASE_URL
  value: {{ printf "postgresql://%s@%s:%d/%s?sslmode=%s" (urlquery $db.user) $db.host (int $db.port) (urlquery $db.name) $db.sslMode | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $db.existingSecret }}
      key: {{ $db.passwordKey }}
{{- if $root.Values.database.caSecret }}
- name: PGSSLROOTCERT
  value: /etc/policy-suite/database/ca.crt
{{- end }}
{{- if $serve }}
- name: {{ $prefix }}APPLY_MIGRATIONS
  value: {{ ternary "false" "true" $root.Values.migrations.enabled | quote }}
{{- end }}
{{- end }}
{{- if or $serve (not $facts.migratesWithoutSecrets) }}
{{- range $setting, $required := $facts.secrets }}
- name: {{ $prefix }}{{ upper $setting }}
  valueFrom:
    secretKeyRef:
      name: {{ include "policy-suite.secretName" (dict "root" $root "name" $name) }}
      key: {{ $setting }}
      {{- if not (include "policy-suite.secretRequired" (dict "root" $root "name" $name "setting" $setting "required" $required)) }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- if $serve }}
{{- range $peer, $setting := $facts.calls }}
- name: {{ $prefix }}{{ upper $setting }}
  value: {{ include "policy-suite.address" (dict "root" $root "name" $peer) | quote }}
{{- end }}
{{- with $facts.podName }}
- name: {{ $prefix }}{{ upper . }}
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- range $setting, $file := $facts.files }}
{{- if and $file.secret (index $values $file.secret).name }}
- name: {{ $prefix }}{{ upper $setting }}
  value: /etc/policy-suite/secret-files/{{ $file.file }}
{{- else if index $values $file.value }}
- name: {{ $prefix }}{{ upper $setting }}
  value: /etc/policy-suite/config/{{ $file.file }}
{{- end }}
{{- end }}
{{- if $root.Values.tls.enabled }}
- name: {{ $prefix }}TLS_CERT_FILE
  value: /etc/policy-suite/tls/tls.crt
- name: {{ $prefix }}TLS_KEY_FILE
  value: /etc/policy-suite/tls/tls.key
- name: {{ $prefix }}TLS_CA_FILE
  value: /etc/policy-suite/tls/ca.crt
- name: {{ $prefix }}TLS_REQUIRE_CLIENT_CERT
  value: {{ $values.tls.requireClientCert | toString | quote }}
{{- if and $values.tls.requireClientCert $root.Values.tls.restrictToCallers }}
{{- /* The DNS names of the services that call this one: their certificates' names. */}}
{{- $callers := list }}
{{- range $caller, $callerFacts := include "policy-suite.components" $root | fromYaml }}
{{- if hasKey ($callerFacts.calls | default dict) $name }}
{{- $callers = append $callers (printf "%s.%s.svc" (include "policy-suite.componentName" (dict "root" $root "name" $caller)) $root.Release.Namespace) }}
{{- end }}
{{- end }}
{{- with concat $callers ($values.tls.extraAllowedClients | default list) }}
- name: {{ $prefix }}TLS_ALLOWED_CLIENTS
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $serve (eq $name "pii") (not (hasKey $values.config "scan_threads")) }}
{{- /* pii's default (0) is a thread per core the node has, not per core the container may
       use: on a large node, far more threads than the CPU limit lets run (throttling). */}}
- name: {{ $prefix }}SCAN_THREADS
  value: {{ include "policy-suite.cpuCores" $values.resources.limits.cpu | quote }}
{{- end }}
{{- range $setting, $value := $values.config }}
{{- if not (has $setting ($facts.ignored | default list)) }}
- name: {{ $prefix }}{{ upper $setting }}
  value: {{ include "policy-suite.settingValue" $value | quote }}
{{- end }}
{{- end }}
{{- with $values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every pod of the chart (services, migrations, test). */}}
{{- define "policy-suite.podSettings" -}}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
# No pod talks to the Kubernetes API.
automountServiceAccountToken: false
# Service links would add <SERVICE>_PORT... variables, some of them named POLICY_<SVC>_*.
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* The one writable directory of every container (the root filesystem is read-only). */}}
{{- define "policy-suite.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/* NetworkPolicy egress rules: DNS, and PostgreSQL (see networkpolicy.yaml). */}}
{{- define "policy-suite.dnsEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with .Values.networkPolicy.dnsTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "policy-suite.databaseEgress" -}}
- ports:
    - port: {{ .Values.database.port }}
      protocol: TCP
  {{- with .Values.networkPolicy.databaseTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
