{{/*
An absl duration as the binaries read it ("250ms", "1h30m", "0"), or whole days ("90d"), in
seconds, as text:
`include "policy-suite.seconds" "1m30s" | float64` is 90.
*/}}
{{- define "policy-suite.seconds" -}}
{{- $units := dict "ns" 1e-9 "us" 1e-6 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- if regexMatch "^[0-9]{1,8}d$" (toString .) }}
{{- $total = mulf (float64 (trimSuffix "d" (toString .))) 86400.0 }}
{{- end }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h)" (toString .) -1 }}
{{- $number := regexFind "^[0-9.]+" . }}
{{- $total = addf $total (mulf (float64 $number) (index $units (trimPrefix $number .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
Bounds of duration settings that values.schema.json's pattern cannot state, as the binaries
check them: service -> setting -> {default, min or above (seconds), max (seconds), bounds}.
*/}}
{{- define "policy-suite.durationBounds" -}}
keys:
  watch_heartbeat: {default: 200ms}
  max_staleness: {default: 1s}
  default_ttl: {default: 2160h}
  max_ttl: {default: 8760h}
  default_overlap: {default: 24h}
  max_overlap: {default: 168h}
authz:
  watch_heartbeat: {default: 200ms}
  max_staleness: {default: 1s}
pii:
  max_document_time: {default: 1m, above: 0, max: 3600, bounds: more than 0s and at most 1h}
region:
  max_staleness: {default: 1s}
  sync_interval: {default: 200ms, min: 0.01, max: 600, bounds: between 10ms and 10m}
  breaker_window: {default: 60s, min: 0.01, bounds: at least 10ms}
audit:
  checkpoint_interval: {default: 5s, min: 0.01, bounds: at least 10ms}
  forgotten_retention: {default: 720h, min: 3600, bounds: at least 1h}
  max_export_write_time: {default: 30s, min: 0.1, max: 3600, bounds: between 100ms and 1h}
edge:
  max_decision_time: {default: 5s, min: 0.01, max: 300, bounds: between 10ms and 5m}
  dependency_check_interval: {default: 500ms, min: 0.05, max: 60, bounds: between 50ms and 1m}
{{- end }}

{{/*
Whether a trusted_proxies entry (an IPv4 or IPv6 address with an optional prefix length, as
values.schema.json's pattern admits it) is a network as the edge reads it: the problem as text,
or nothing. The address is taken as 16-bit groups (IPv4's two, IPv6's eight, a dotted IPv4
tail as two); the bits past the prefix length must be zero, and an IPv4-mapped IPv6 network
(::ffff:a.b.c.d, however written) needs a prefix length of 96 or more.
*/}}
{{- define "policy-suite.cidrProblem" -}}
{{- $entry := . }}
{{- $parts := splitList "/" $entry }}
{{- $address := lower (index $parts 0) }}
{{- $digits := dict "0" 0 "1" 1 "2" 2 "3" 3 "4" 4 "5" 5 "6" 6 "7" 7 "8" 8 "9" 9 "a" 10 "b" 11 "c" 12 "d" 13 "e" 14 "f" 15 }}
{{- $tail := list }}
{{- $dotted := regexFind "[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$" $address }}
{{- if $dotted }}
{{- $o := splitList "." $dotted }}
{{- $tail = list (add (mul (atoi (index $o 0)) 256) (atoi (index $o 1))) (add (mul (atoi (index $o 2)) 256) (atoi (index $o 3))) }}
{{- $address = trimSuffix $dotted $address }}
{{- if not (hasSuffix "::" $address) }}{{ $address = trimSuffix ":" $address }}{{ end }}
{{- end }}
{{- $groups := list }}
{{- if contains ":" $entry }}
{{- $halves := list }}
{{- range splitList "::" $address }}
{{- $half := list }}
{{- range splitList ":" . | compact }}
{{- $value := 0 }}
{{- range splitList "" . }}{{ $value = add (mul $value 16) (index $digits .) }}{{ end }}
{{- $half = append $half $value }}
{{- end }}
{{- $halves = append $halves $half }}
{{- end }}
{{- $groups = index $halves 0 }}
{{- if gt (len $halves) 1 }}
{{- range until (int (sub (sub (sub 8 (len $tail)) (len $groups)) (len (index $halves 1)))) }}
{{- $groups = append $groups 0 }}
{{- end }}
{{- $groups = concat $groups (index $halves 1) }}
{{- end }}
{{- end }}
{{- $groups = concat $groups $tail }}
{{- $bits := mul 16 (len $groups) }}
{{- $prefix := $bits }}
{{- if gt (len $parts) 1 }}{{ $prefix = atoi (index $parts 1) }}{{ end }}
{{- $mapped := and (eq (len $groups) 8) (eq (index $groups 5) 65535) (eq (add (index $groups 0) (index $groups 1) (index $groups 2) (index $groups 3) (index $groups 4)) 0) }}
{{- if and $mapped (lt (int $prefix) 96) }}
{{- print "is an IPv4-mapped IPv6 network, which needs a prefix length of 96 to 128 (IPv4's /0 to /32): write IPv4 networks as IPv4" }}
{{- else }}
{{- $powers := list 1 2 4 8 16 32 64 128 256 512 1024 2048 4096 8192 16384 32768 65536 }}
{{- $set := false }}
{{- range $i, $group := $groups }}
{{- $network := min 16 (max 0 (sub $prefix (mul 16 $i))) }}
{{- if ne (mod $group (index $powers (int (sub 16 $network)))) 0 }}{{ $set = true }}{{ end }}
{{- end }}
{{- if $set }}has host bits set past its prefix length{{ end }}
{{- end }}
{{- end }}

{{/*
Checks of values that relate to each other, which values.schema.json (JSON schema draft-07)
cannot express: rendering fails with a message naming the values, rather than the pods failing
to start (CrashLoopBackOff) or being killed while they drain. Renders nothing.
*/}}
{{- define "policy-suite.checks" -}}
{{- $root := . }}
{{- range $name, $facts := include "policy-suite.components" $root | fromYaml }}
{{- $ctx := dict "root" $root "name" $name }}
{{- range $setting, $file := $facts.files }}
{{- if and $file.secret (index (index $root.Values $name) $file.secret).name (index (index $root.Values $name) $file.value) }}
{{- fail (printf "%s.%s and %s.%s.name both give %s: set one" $name $file.value $name $file.secret $file.file) }}
{{- end }}
{{- end }}
{{- $delayText := include "policy-suite.shutdownDelay" $ctx }}
{{- $delayName := include "policy-suite.shutdownDelayName" $ctx }}
{{- $delay := include "policy-suite.seconds" $delayText | float64 }}
{{- if gt $delay 600.0 }}
{{- fail (printf "%s (%s) must be at most 10m: the binaries refuse longer" $delayName $delayText) }}
{{- end }}
{{- $config := (index $root.Values $name).config }}
{{- /* The binaries' defaults of the settings compared here. */}}
{{- $grace := $config.shutdown_grace | default "10s" }}
{{- $total := addf $delay (include "policy-suite.seconds" $grace | float64) }}
{{- $termination := include "policy-suite.terminationGracePeriodSeconds" $ctx }}
{{- if ge $total (float64 $termination) }}
{{- fail (printf "%s (%s) + %s.config.shutdown_grace (%s) must be shorter than %s (%v): Kubernetes kills a pod that is still draining at the end of it" $delayName $delayText $name $grace (include "policy-suite.terminationGracePeriodSecondsName" $ctx) $termination) }}
{{- end }}
{{- end }}
{{- /* Each service's duration settings: in bounds, and related ones in order. */}}
{{- $seconds := dict }}
{{- range $name, $settings := include "policy-suite.durationBounds" $root | fromYaml }}
{{- $config := (index $root.Values $name).config }}
{{- $values := dict }}
{{- range $setting, $b := $settings }}
{{- $text := index $config $setting | default $b.default }}
{{- $value := include "policy-suite.seconds" $text | float64 }}
{{- if or (and (hasKey $b "min") (lt $value (float64 $b.min))) (and (hasKey $b "above") (le $value (float64 $b.above))) (and (hasKey $b "max") (gt $value (float64 $b.max))) }}
{{- fail (printf "%s.config.%s (%s) must be %s: the %s binary refuses to start otherwise" $name $setting $text $b.bounds $name) }}
{{- end }}
{{- $_ := set $values $setting (list $text $value) }}
{{- end }}
{{- $_ := set $seconds $name $values }}
{{- end }}
{{- $shorter := list
  (list "keys" "watch_heartbeat" "max_staleness")
  (list "authz" "watch_heartbeat" "max_staleness") }}
{{- if eq $root.Values.store "postgres" }}
{{- $shorter = append $shorter (list "region" "sync_interval" "max_staleness") }}
{{- end }}
{{- range $shorter }}
{{- $name := index . 0 }}
{{- $a := index (index $seconds $name) (index . 1) }}
{{- $b := index (index $seconds $name) (index . 2) }}
{{- if ge (index $a 1) (index $b 1) }}
{{- fail (printf "%s.config.%s (%s) must be shorter than %s.config.%s (%s): the %s binary refuses to start otherwise" $name (index . 1) (index $a 0) $name (index . 2) (index $b 0) $name) }}
{{- end }}
{{- end }}
{{- range list (list "default_ttl" "max_ttl") (list "default_overlap" "max_overlap") }}
{{- $a := index $seconds.keys (index . 0) }}
{{- $b := index $seconds.keys (index . 1) }}
{{- if gt (index $a 1) (index $b 1) }}
{{- fail (printf "keys.config.%s (%s) must be at most keys.config.%s (%s): the keys binary refuses to start otherwise" (index . 0) (index $a 0) (index . 1) (index $b 0)) }}
{{- end }}
{{- end }}
{{- $migrator := $root.Values.migrations.database }}
{{- if and $migrator.existingSecret (not $migrator.user) }}
{{- fail (printf "migrations.database.existingSecret (%s) is set without migrations.database.user: name the role the migration Jobs run as, or leave both empty for each service's own" $migrator.existingSecret) }}
{{- end }}
{{- if and $migrator.user (not $migrator.existingSecret) }}
{{- fail (printf "migrations.database.user (%s) needs migrations.database.existingSecret, the Secret holding that role's password" $migrator.user) }}
{{- end }}
{{- if and $migrator.user (eq $root.Values.store "postgres") (not $root.Values.migrations.enabled) }}
{{- fail (printf "migrations.database.user (%s) is set with migrations.enabled=false: there are no migration Jobs, each service would migrate as its own role. Set migrations.enabled=true, or leave migrations.database.user empty" $migrator.user) }}
{{- end }}
{{- /* libpq's verify-ca and verify-full need a root certificate: without database.caSecret
       (PGSSLROOTCERT) it looks for ~/.postgresql/root.crt, which the image does not have, and
       every connection fails. A service's extraEnv may name a CA file itself. */}}
{{- $db := $root.Values.database }}
{{- if and (eq $root.Values.store "postgres") (has $db.sslMode (list "verify-ca" "verify-full")) (not $db.caSecret) }}
{{- range $name, $facts := include "policy-suite.components" $root | fromYaml }}
{{- if $facts.database }}
{{- $own := false }}
{{- range (index $root.Values $name).extraEnv }}{{ if eq .name "PGSSLROOTCERT" }}{{ $own = true }}{{ end }}{{ end }}
{{- if not $own }}
{{- fail (printf "database.sslMode %s verifies the server against a CA that %s does not have: set database.caSecret (a Secret whose ca.crt is the server's CA), or PGSSLROOTCERT in %s.extraEnv (e.g. /etc/ssl/certs/ca-certificates.crt for a public CA); libpq refuses every connection otherwise" $db.sslMode $name $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $_ := include "policy-suite.components" $root | fromYaml }}
{{- $autoscaling := (index $root.Values $name).autoscaling }}
{{- if and (include "policy-suite.autoscaled" (dict "root" $root "name" $name)) (gt (int64 $autoscaling.minReplicas) (int64 $autoscaling.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas (%d) must be at most %s.autoscaling.maxReplicas (%d): Kubernetes refuses the HorizontalPodAutoscaler otherwise, after the migrations ran" $name (int64 $autoscaling.minReplicas) $name (int64 $autoscaling.maxReplicas)) }}
{{- end }}
{{- end }}
{{- /* A database service waits up to database_start_wait for PostgreSQL before it serves
       health at all: the startup probe must give it longer, or the kubelet restarts it while
       it waits (a longer wait set to ride out a database failover would never be had). */}}
{{- $startup := $root.Values.probes.startup }}
{{- $window := mul (int64 $startup.periodSeconds) (int64 $startup.failureThreshold) }}
{{- range $name, $facts := include "policy-suite.components" $root | fromYaml }}
{{- if include "policy-suite.usesPostgres" (dict "root" $root "name" $name) }}
{{- $wait := (index $root.Values $name).config.database_start_wait | default "60s" }}
{{- if ge (include "policy-suite.seconds" $wait | float64) (float64 $window) }}
{{- fail (printf "%s.config.database_start_wait (%s) must be shorter than the startup probe's window, probes.startup.periodSeconds x failureThreshold (%ds): the kubelet restarts a pod that waits for PostgreSQL longer" $name $wait $window) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* gRPC may hold grpc_memory_quota bytes of its own: at or past the container's memory
       limit, the kernel kills the pod (OOMKilled) before gRPC pushes back on its callers. */}}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 }}
{{- range $name, $_ := include "policy-suite.components" $root | fromYaml }}
{{- $values := index $root.Values $name }}
{{- $limit := include "policy-suite.settingValue" $values.resources.limits.memory }}
{{- $unit := regexFind "[A-Za-z]+$" $limit }}
{{- $bytes := mulf (float64 (trimSuffix $unit $limit)) (float64 (index $units $unit | default 1)) }}
{{- $quota := $values.config.grpc_memory_quota | default 268435456 }}
{{- if ge (float64 $quota) $bytes }}
{{- fail (printf "%s.config.grpc_memory_quota (%d) must be below %s.resources.limits.memory (%s), well below: gRPC may hold that much on its own, and the pod is OOM-killed at its limit" $name (int64 $quota) $name $limit) }}
{{- end }}
{{- end }}
{{- $pii := $root.Values.pii.config }}
{{- $inFlight := int64 ($pii.max_scan_bytes_in_flight | default 0) }}
{{- $largest := max (int64 ($pii.max_request_bytes | default 1048576)) (int64 ($pii.max_document_bytes | default 8388608)) }}
{{- if and (ne $inFlight 0) (lt $inFlight $largest) }}
{{- fail (printf "pii.config.max_scan_bytes_in_flight (%d) must be 0 (automatic) or at least pii.config.max_request_bytes and pii.config.max_document_bytes (%d), else such a request could never be scanned: the pii binary refuses to start otherwise" $inFlight $largest) }}
{{- end }}
{{- $audit := $root.Values.audit.config }}
{{- $batch := $audit.max_batch | default 1000 }}
{{- $queued := $audit.max_queued_appends | default 20000 }}
{{- if lt (int64 $queued) (int64 $batch) }}
{{- fail (printf "audit.config.max_queued_appends (%v) must be at least audit.config.max_batch (%v): the audit binary refuses to start otherwise" (int64 $queued) (int64 $batch)) }}
{{- end }}
{{- range $name, $_ := include "policy-suite.components" $root | fromYaml }}
{{- $reload := (index $root.Values $name).config.tls_reload_interval | default "1m" }}
{{- if lt (include "policy-suite.seconds" $reload | float64) 1.0 }}
{{- fail (printf "%s.config.tls_reload_interval (%s) must be at least 1s: the %s binary refuses to start otherwise" $name $reload $name) }}
{{- end }}
{{- end }}
{{- if gt (include "policy-suite.seconds" $root.Values.maxConnectionAge | float64) 86400.0 }}
{{- fail (printf "maxConnectionAge (%s) must be at most 24h: the binaries refuse longer" $root.Values.maxConnectionAge) }}
{{- end }}
{{- if gt (include "policy-suite.seconds" $root.Values.maxConnectionIdle | float64) 86400.0 }}
{{- fail (printf "maxConnectionIdle (%s) must be at most 24h: the binaries refuse longer" $root.Values.maxConnectionIdle) }}
{{- end }}
{{- $ping := include "policy-suite.seconds" $root.Values.keepalive.minPingInterval | float64 }}
{{- if or (lt $ping 1.0) (gt $ping 86400.0) }}
{{- fail (printf "keepalive.minPingInterval (%s) must be between 1s and 24h: the binaries refuse it otherwise" $root.Values.keepalive.minPingInterval) }}
{{- end }}
{{- $edge := $root.Values.edge.config }}
{{- $edgeGrace := $edge.shutdown_grace | default "10s" }}
{{- $decision := $edge.max_decision_time | default "5s" }}
{{- if lt (include "policy-suite.seconds" $edgeGrace | float64) (include "policy-suite.seconds" $decision | float64) }}
{{- fail (printf "edge.config.shutdown_grace (%s) must be at least edge.config.max_decision_time (%s): the edge refuses to start otherwise, as decisions in flight at shutdown would be cancelled" $edgeGrace $decision) }}
{{- end }}
{{- /* trusted_proxies as the edge splits it: at commas, blanks trimmed, empty entries left out. */}}
{{- $proxies := list }}
{{- range splitList "," (toString ($edge.trusted_proxies | default "")) }}
{{- with trim . }}{{ $proxies = append $proxies . }}{{ end }}
{{- end }}
{{- if gt (len $proxies) 256 }}
{{- fail (printf "edge.config.trusted_proxies has %d entries; the edge refuses more than 256" (len $proxies)) }}
{{- end }}
{{- $seen := dict }}
{{- range $i, $entry := $proxies }}
{{- with include "policy-suite.cidrProblem" $entry }}
{{- fail (printf "edge.config.trusted_proxies[%d]: CIDR '%s' %s: the edge refuses to start otherwise" $i $entry .) }}
{{- end }}
{{- /* Repeats as written (a bare address is its /32 or /128); the edge also finds one network
       written two ways, which this does not. */}}
{{- $key := lower $entry }}
{{- if not (contains "/" $key) }}{{ $key = printf "%s/%s" $key (ternary "128" "32" (contains ":" $key)) }}{{ end }}
{{- if hasKey $seen $key }}
{{- fail (printf "edge.config.trusted_proxies[%d]: '%s' is listed twice: the edge refuses to start otherwise" $i $entry) }}
{{- end }}
{{- $_ := set $seen $key true }}
{{- end }}
{{- end }}
