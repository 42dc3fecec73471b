// chart_render renders a Helm chart the way `helm template` does, for the features that
// deploy/helm/policy-suite uses, because Helm is not packaged for Debian 12. It is built from
// Debian's Go packages only (golang-go, golang-github-masterminds-sprig-dev,
// golang-k8s-sigs-yaml-dev, golang-github-xeipuuv-gojsonschema-dev), offline, in GOPATH mode:
//
//	GO111MODULE=off GOPATH=$BUILD/gopath:/usr/share/gocode GOCACHE=$BUILD/gocache \
//	  go build -o $BUILD/chart_render tools/chart_render/main.go
//
// Usage:
//
//	chart_render [flags] CHART_DIR
//	  -f FILE              values file, repeatable; later files win (helm -f)
//	  --set K=V[,K=V]      typed value: true/false, null, integers, {a,b} lists (helm --set)
//	  --set-string K=V     the value as a string (helm --set-string)
//	  --name NAME          .Release.Name (default "release-name", as helm template)
//	  --namespace NS       .Release.Namespace (default "default")
//	  --kube-version V     checked against Chart.yaml's kubeVersion (default 1.30.0)
//	  --skip-tests         leave out the `helm test` hooks
//	  --notes              print the rendered NOTES.txt instead of the manifests
//
// What it does as Helm 3 does:
//   - .Values: values.yaml, then each -f file merged over it (maps merge key by key), then
//     --set; a null deletes the key. The result must satisfy values.schema.json (draft-07,
//     validated with gojsonschema, the validator Helm 3 used up to 3.14), or rendering fails.
//   - .Release (Name, Namespace, Service "Helm", IsInstall, IsUpgrade, Revision), .Chart (the
//     Chart.yaml fields under Helm's Go names: Name, Version, AppVersion, ...), .Template,
//     .Capabilities.KubeVersion.
//   - Go text/template with sprig's functions less env/expandenv, and toYaml, fromYaml,
//     fromYamlArray, toJson, fromJson, fromJsonArray, include, tpl, required; missing keys
//     render as empty. `lookup` fails: there is no cluster to ask.
//   - Every file under templates/ is parsed; those whose name starts with "_" and NOTES.txt
//     are not output; each output file is split into documents at "---", empty documents are
//     dropped, every document must be a YAML mapping with apiVersion, kind and metadata.name.
//   - Output as `helm template`: "---\n# Source: CHART/templates/FILE\n" before each document;
//     plain resources first in Helm's install order by kind, then hooks (helm.sh/hook),
//     including the `helm test` ones unless --skip-tests.
//
// Not supported (an error, never a silent difference): subcharts (dependencies, charts/),
// .Files, lookup, list indexes in --set keys. Exit status: 0 rendered, 1 error, 2 usage.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	// GOPATH mode resolves the /v3 suffix only for code inside GOPATH: from here, the
	// directories that Debian's packages install (both hold v3).
	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

type values = map[string]interface{}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	chartDir    string
	valueFiles  stringList
	sets        stringList
	setStrings  stringList
	release     string
	namespace   string
	kubeVersion string
	skipTests   bool
	notes       bool
}

func main() {
	opts, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "chart_render: %v\n", err)
		os.Exit(2)
	}
	out, err := run(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

// parseArgs accepts flags before and after the chart directory, as helm does.
func parseArgs(args []string) (options, error) {
	var o options
	fset := flag.NewFlagSet("chart_render", flag.ContinueOnError)
	fset.Var(&o.valueFiles, "f", "values file (repeatable)")
	fset.Var(&o.valueFiles, "values", "values file (repeatable)")
	fset.Var(&o.sets, "set", "K=V[,K=V] (repeatable)")
	fset.Var(&o.setStrings, "set-string", "K=V[,K=V] as strings (repeatable)")
	fset.StringVar(&o.release, "name", "release-name", "release name")
	fset.StringVar(&o.namespace, "namespace", "default", "release namespace")
	fset.StringVar(&o.kubeVersion, "kube-version", "1.30.0", "Kubernetes version")
	fset.BoolVar(&o.skipTests, "skip-tests", false, "leave out test hooks")
	fset.BoolVar(&o.notes, "notes", false, "print NOTES.txt only")
	var positional []string
	for {
		if err := fset.Parse(args); err != nil {
			return o, err
		}
		if fset.NArg() == 0 {
			break
		}
		positional = append(positional, fset.Arg(0))
		args = fset.Args()[1:]
	}
	if len(positional) != 1 {
		return o, errors.New("usage: chart_render [flags] CHART_DIR")
	}
	o.chartDir = positional[0]
	return o, nil
}

func run(o options) (string, error) {
	meta, err := loadChartMetadata(o.chartDir)
	if err != nil {
		return "", err
	}
	if err := checkKubeVersion(meta, o.kubeVersion); err != nil {
		return "", err
	}
	vals, err := mergedValues(o)
	if err != nil {
		return "", err
	}
	if err := validateValues(o.chartDir, meta["Name"].(string), vals); err != nil {
		return "", err
	}
	rendered, err := renderTemplates(o, meta, vals)
	if err != nil {
		return "", err
	}
	notesName := meta["Name"].(string) + "/templates/NOTES.txt"
	if o.notes {
		return rendered[notesName], nil
	}
	return manifests(rendered, notesName, o.skipTests)
}

// ---------------------------------------------------------------------------------------------
// Chart.yaml

// Helm's chart.Metadata field names, by their Chart.yaml keys.
var metadataFields = map[string]string{
	"apiVersion": "APIVersion", "name": "Name", "version": "Version", "appVersion": "AppVersion",
	"description": "Description", "type": "Type", "kubeVersion": "KubeVersion", "home": "Home",
	"sources": "Sources", "keywords": "Keywords", "maintainers": "Maintainers", "icon": "Icon",
	"annotations": "Annotations", "deprecated": "Deprecated", "condition": "Condition",
	"tags": "Tags", "dependencies": "Dependencies",
}

func loadChartMetadata(dir string) (values, error) {
	raw := values{}
	if err := readYAML(filepath.Join(dir, "Chart.yaml"), &raw); err != nil {
		return nil, err
	}
	meta := values{}
	for k, v := range raw {
		field, ok := metadataFields[k]
		if !ok {
			return nil, fmt.Errorf("Chart.yaml: unknown field %q", k)
		}
		meta[field] = v
	}
	if meta["APIVersion"] != "v2" {
		return nil, errors.New("Chart.yaml: apiVersion must be v2")
	}
	for _, f := range []string{"Name", "Version"} {
		if s, _ := meta[f].(string); s == "" {
			return nil, fmt.Errorf("Chart.yaml: %s is required", strings.ToLower(f))
		}
	}
	if _, err := semver.StrictNewVersion(meta["Version"].(string)); err != nil {
		return nil, fmt.Errorf("Chart.yaml: version %q is not SemVer 2", meta["Version"])
	}
	if meta["Dependencies"] != nil {
		return nil, errors.New("Chart.yaml: dependencies (subcharts) are not supported")
	}
	if _, err := os.Stat(filepath.Join(dir, "charts")); err == nil {
		return nil, errors.New("charts/ (subcharts) is not supported")
	}
	return meta, nil
}

func checkKubeVersion(meta values, kubeVersion string) error {
	constraint, _ := meta["KubeVersion"].(string)
	if constraint == "" {
		return nil
	}
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return fmt.Errorf("Chart.yaml: kubeVersion: %v", err)
	}
	v, err := semver.NewVersion(kubeVersion)
	if err != nil {
		return fmt.Errorf("--kube-version: %v", err)
	}
	if !c.Check(v) {
		return fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes v%s",
			constraint, v)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// Values

func readYAML(file string, into interface{}) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%s: %v", file, err)
	}
	return nil
}

func mergedValues(o options) (values, error) {
	defaults := values{}
	if err := readYAML(filepath.Join(o.chartDir, "values.yaml"), &defaults); err != nil &&
		!errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	user := values{}
	for _, f := range o.valueFiles {
		v := values{}
		if err := readYAML(f, &v); err != nil {
			return nil, err
		}
		mergeMaps(user, v)
	}
	for _, s := range o.sets {
		if err := parseSet(s, user, true); err != nil {
			return nil, fmt.Errorf("--set %q: %v", s, err)
		}
	}
	for _, s := range o.setStrings {
		if err := parseSet(s, user, false); err != nil {
			return nil, fmt.Errorf("--set-string %q: %v", s, err)
		}
	}
	mergeMaps(defaults, user)
	return dropNulls(defaults), nil
}

// mergeMaps merges src into dst: maps key by key, anything else replaced (nulls kept, so that
// they can delete a default later).
func mergeMaps(dst, src values) {
	for k, v := range src {
		if sm, ok := v.(values); ok {
			if dm, ok := dst[k].(values); ok {
				mergeMaps(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func dropNulls(m values) values {
	for k, v := range m {
		switch t := v.(type) {
		case nil:
			delete(m, k)
		case values:
			dropNulls(t)
		}
	}
	return m
}

var intPattern = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)$`)

// typedValue types a --set value as Helm's strvals does.
func typedValue(s string, typed bool) interface{} {
	if !typed {
		return s
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if intPattern.MatchString(s) {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return s
}

// splitUnescaped splits s at sep outside {...} and not after a backslash.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\':
			i++
		case s[i] == '{':
			depth++
		case s[i] == '}':
			depth--
		case s[i] == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

var escaped = regexp.MustCompile(`\\(.)`)

func unescape(s string) string { return escaped.ReplaceAllString(s, "$1") }

// parseSet applies "a.b=v,c={x,y}" to into.
func parseSet(s string, into values, typed bool) error {
	for _, pair := range splitUnescaped(s, ',') {
		eq := strings.IndexByte(pair, '=')
		if eq <= 0 {
			return fmt.Errorf("key %q has no value", pair)
		}
		key, raw := pair[:eq], pair[eq+1:]
		if strings.ContainsAny(key, "[]") {
			return errors.New("list indexes in keys are not supported")
		}
		var value interface{}
		if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
			list := []interface{}{}
			if inner := raw[1 : len(raw)-1]; inner != "" {
				for _, item := range splitUnescaped(inner, ',') {
					list = append(list, typedValue(unescape(item), typed))
				}
			}
			value = list
		} else {
			value = typedValue(unescape(raw), typed)
		}
		path := splitUnescaped(key, '.')
		m := into
		for _, p := range path[:len(path)-1] {
			next, ok := m[unescape(p)].(values)
			if !ok {
				next = values{}
				m[unescape(p)] = next
			}
			m = next
		}
		m[unescape(path[len(path)-1])] = value
	}
	return nil
}

// validateValues checks vals against the chart's values.schema.json, as Helm 3 does.
func validateValues(chartDir, chartName string, vals values) error {
	schema, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	doc, err := json.Marshal(vals)
	if err != nil {
		return err
	}
	result, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema),
		gojsonschema.NewBytesLoader(doc))
	if err != nil {
		return fmt.Errorf("values.schema.json: %v", err)
	}
	if result.Valid() {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n", chartName)
	for _, e := range result.Errors() {
		fmt.Fprintf(&b, "- %s\n", e)
	}
	return errors.New(strings.TrimSuffix(b.String(), "\n"))
}

// ---------------------------------------------------------------------------------------------
// Templates

// funcMap is Helm's: sprig's text functions without env/expandenv, and Helm's own. include,
// tpl and required are bound in renderTemplates.
func funcMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	f["fromYaml"] = func(s string) values {
		m := values{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromYamlArray"] = func(s string) []interface{} {
		a := []interface{}{}
		if err := yaml.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	f["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) values {
		m := values{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromJsonArray"] = func(s string) []interface{} {
		a := []interface{}{}
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	f["lookup"] = func(string, string, string, string) (values, error) {
		return nil, errors.New("lookup is not supported: chart_render has no cluster to ask")
	}
	return f
}

// templateFiles lists the files under CHART/templates, named CHART_NAME/templates/..., in
// Helm's parse order (deepest paths first).
func templateFiles(chartDir, chartName string) (map[string]string, []string, error) {
	files := map[string]string{}
	root := filepath.Join(chartDir, "templates")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(chartDir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		files[path.Join(chartName, filepath.ToSlash(rel))] = string(data)
		return err
	})
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		ci, cj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if ci != cj {
			return ci > cj
		}
		return names[i] > names[j]
	})
	return files, names, err
}

func renderTemplates(o options, meta values, vals values) (map[string]string, error) {
	chartName := meta["Name"].(string)
	files, names, err := templateFiles(o.chartDir, chartName)
	if err != nil {
		return nil, err
	}
	v, _ := semver.NewVersion(o.kubeVersion)
	top := values{
		"Values": vals,
		"Chart":  meta,
		"Release": values{
			"Name": o.release, "Namespace": o.namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": values{"KubeVersion": values{
			"Version": "v" + v.String(), "GitVersion": "v" + v.String(),
			"Major": strconv.FormatUint(v.Major(), 10), "Minor": strconv.FormatUint(v.Minor(), 10),
		}},
	}

	t := template.New("gotpl").Option("missingkey=zero")
	fm := funcMap()
	includeDepth := map[string]int{}
	fm["include"] = func(name string, data interface{}) (string, error) {
		if includeDepth[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		includeDepth[name]++
		defer func() { includeDepth[name]-- }()
		var buf strings.Builder
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	fm["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := t.Clone()
		if err != nil {
			return "", err
		}
		name := "tpl:" + text
		if _, err := clone.New(name).Parse(text); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		var buf strings.Builder
		if err := clone.ExecuteTemplate(&buf, name, data); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	fm["required"] = func(msg string, val interface{}) (interface{}, error) {
		if s, ok := val.(string); val == nil || (ok && s == "") {
			return val, errors.New(msg)
		}
		return val, nil
	}
	t.Funcs(fm)
	for _, name := range names {
		if _, err := t.New(name).Parse(files[name]); err != nil {
			return nil, fmt.Errorf("parse error: %v", err)
		}
	}

	rendered := map[string]string{}
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		ctx := values{}
		for k, v := range top {
			ctx[k] = v
		}
		ctx["Template"] = values{"Name": name, "BasePath": chartName + "/templates"}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name, ctx); err != nil {
			return nil, fmt.Errorf("execution error: %v", err)
		}
		rendered[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return rendered, nil
}

// ---------------------------------------------------------------------------------------------
// Manifests

// Helm's InstallOrder (pkg/releaseutil/kind_sorter.go); other kinds come after these.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService",
}

var documentSeparator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

type manifest struct {
	source, content, kind string
	hook, test            bool
}

func manifests(rendered map[string]string, notesName string, skipTests bool) (string, error) {
	var names []string
	for n := range rendered {
		ext := path.Ext(n)
		if n != notesName && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var all []manifest
	for _, name := range names {
		for _, doc := range documentSeparator.Split(strings.TrimSpace(rendered[name]), -1) {
			doc = strings.TrimSpace(doc)
			if doc == "" {
				continue
			}
			m, err := parseManifest(name, doc)
			if err != nil {
				return "", err
			}
			if !(m.test && skipTests) {
				all = append(all, m)
			}
		}
	}
	rank := func(kind string) int {
		for i, k := range installOrder {
			if k == kind {
				return i
			}
		}
		return len(installOrder)
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].hook != all[j].hook {
			return !all[i].hook
		}
		return rank(all[i].kind) < rank(all[j].kind)
	})
	var out bytes.Buffer
	for _, m := range all {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	return out.String(), nil
}

func parseManifest(source, doc string) (manifest, error) {
	var obj struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name        string            `json:"name"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		return manifest{}, fmt.Errorf("YAML parse error on %s: %v", source, err)
	}
	if obj.APIVersion == "" || obj.Kind == "" || obj.Metadata.Name == "" {
		return manifest{}, fmt.Errorf("%s: a document without apiVersion, kind or metadata.name:\n%s",
			source, doc)
	}
	m := manifest{source: source, content: doc, kind: obj.Kind}
	if hook, ok := obj.Metadata.Annotations["helm.sh/hook"]; ok {
		m.hook = true
		for _, h := range strings.Split(hook, ",") {
			h = strings.TrimSpace(h)
			m.test = m.test || h == "test" || h == "test-success"
		}
	}
	return m, nil
}
