{{/*
An absl duration as the binaries read it ("250ms", "1h30m", "0") in seconds, as text:
`include "policy-suite.seconds" "1m30s" | float64` is 90.
*/}}
{{- define "policy-suite.seconds" -}}
{{- $units := dict "ns" 1e-9 "us" 1e-6 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h)" (toString .) -1 }}
{{- $number := regexFind "^[0-9.]+" . }}
{{- $total = addf $total (mulf (float64 $number) (index $units (trimPrefix $number .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
Checks of values that relate to each other, which values.schema.json (JSON schema draft-07)
cannot express: rendering fails with a message naming the values, rather than the pods failing
to start (CrashLoopBackOff) or being killed while they drain. Renders nothing.
*/}}
{{- define "policy-suite.checks" -}}
{{- $root := . }}
{{- $delay := include "policy-suite.seconds" $root.Values.shutdownDelay | float64 }}
{{- if gt $delay 600.0 }}
{{- fail (printf "shutdownDelay (%s) must be at most 10m: the binaries refuse longer" $root.Values.shutdownDelay) }}
{{- end }}
{{- range $name, $facts := include "policy-suite.components" $root | fromYaml }}
{{- $config := (index $root.Values $name).config }}
{{- /* The binaries' defaults of the settings compared here. */}}
{{- $grace := $config.shutdown_grace | default "10s" }}
{{- $total := addf $delay (include "policy-suite.seconds" $grace | float64) }}
{{- if ge $total (float64 $root.Values.terminationGracePeriodSeconds) }}
{{- fail (printf "shutdownDelay (%s) + %s.config.shutdown_grace (%s) must be shorter than terminationGracePeriodSeconds (%v): Kubernetes kills a pod that is still draining at the end of it" $root.Values.shutdownDelay $name $grace $root.Values.terminationGracePeriodSeconds) }}
{{- end }}
{{- end }}
{{- $edge := $root.Values.edge.config }}
{{- $edgeGrace := $edge.shutdown_grace | default "10s" }}
{{- $decision := $edge.max_decision_time | default "5s" }}
{{- if lt (include "policy-suite.seconds" $edgeGrace | float64) (include "policy-suite.seconds" $decision | float64) }}
{{- fail (printf "edge.config.shutdown_grace (%s) must be at least edge.config.max_decision_time (%s): the edge refuses to start otherwise, as decisions in flight at shutdown would be cancelled" $edgeGrace $decision) }}
{{- end }}
{{- end }}
