// helm-render renders a Helm chart the way `helm template` does, for CI machines without helm
// and without network: it builds offline from Debian's Go packages (GOPATH mode) and reproduces
// the parts of Helm's engine (helm.sh/helm/v3/pkg/engine, pkg/chartutil, pkg/strvals,
// pkg/releaseutil) that decide what a chart renders to:
//
//   - text/template with sprig.TxtFuncMap() minus env and expandenv, plus include (with
//     Helm's recursion limit), tpl, required, lookup (empty, as in `helm template`), toYaml,
//     fromYaml, fromYamlArray, toJson, fromJson, fromJsonArray;
//   - missingkey=zero, then "<no value>" removed from the output, as Helm does;
//   - .Values: the chart's values.yaml, -f files merged in order, then --set/--set-string, then
//     coalesced onto the chart's values (maps merge, a null deletes the key); numbers read from
//     YAML are float64 as in Helm (sigs.k8s.io/yaml);
//   - .Release, .Chart (Chart.yaml with Helm's capitalised field names), .Capabilities
//     (KubeVersion, APIVersions.Has), .Template (Name, BasePath), .Files (Get, GetBytes, Glob,
//     Lines, AsConfig, AsSecrets; .helmignore applied);
//   - every template under templates/ parsed into one set (a parse error fails the render),
//     files starting with `_` not rendered, NOTES.txt rendered apart, each output split into
//     documents on `---` and each document parsed as YAML ("YAML parse error on ..."), the
//     chart's kubeVersion checked against the capabilities.
//
// Not covered (see helm/saslgate/README.md): values.schema.json (the caller validates the
// merged values it prints), subcharts, hooks, install ordering, toToml, --set with list indexes.
//
// usage: helm-render [--name N] [--namespace NS] [-f FILE]... [--set K=V]... [--set-string K=V]...
//
//	[--kube-version V] [--api-versions G/V]... [--json] CHART_DIR
//
// With --json it prints {"values", "manifests": [{"source", "content", "object"}], "notes"};
// without, a YAML stream like `helm template`. Any error: a message on stderr and exit status 1.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	// sprig/v3 and semver/v3 as Debian installs them in GOPATH (built with GO111MODULE=off).
	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

// Helm's limit on nested includes of one name (pkg/engine recursionMaxNums).
const recursionMaxNums = 1000

// Helm's default capabilities for `helm template` without --kube-version.
const defaultKubeVersion = "v1.29.0"

// The API versions `helm template` assumes without a cluster (a subset of Helm's built-in set,
// the groups this chart may ask about).
var defaultAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
	"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
	"apiextensions.k8s.io/v1", "admissionregistration.k8s.io/v1", "coordination.k8s.io/v1",
	"discovery.k8s.io/v1", "events.k8s.io/v1", "scheduling.k8s.io/v1", "certificates.k8s.io/v1",
}

// Maintainer, Dependency and Metadata mirror helm.sh/helm/v3/pkg/chart: templates see the Go
// field names (.Chart.AppVersion), Chart.yaml uses the JSON names.
type Maintainer struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	URL   string `json:"url,omitempty"`
}

type Dependency struct {
	Name       string   `json:"name"`
	Version    string   `json:"version,omitempty"`
	Repository string   `json:"repository"`
	Condition  string   `json:"condition,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Enabled    bool     `json:"enabled,omitempty"`
	Alias      string   `json:"alias,omitempty"`
}

type Metadata struct {
	Name         string            `json:"name,omitempty"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []*Maintainer     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []*Dependency     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

// KubeVersion, VersionSet and Capabilities mirror pkg/chartutil.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (kv *KubeVersion) String() string     { return kv.Version }
func (kv *KubeVersion) GitVersion() string { return kv.Version }

type VersionSet []string

func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type HelmVersion struct {
	Version string
}

type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion HelmVersion
}

// Files mirrors pkg/engine Files: the chart's non-template files.
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string      { return string(f[name]) }

// Glob matches with path.Match per path segment ("**" is not supported).
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}

func (f Files) Lines(name string) []string {
	s := string(f[name])
	if s == "" {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func (f Files) AsConfig() string {
	m := map[string]string{}
	for name, data := range f {
		m[path.Base(name)] = string(data)
	}
	return toYAML(m)
}

func (f Files) AsSecrets() string {
	m := map[string]string{}
	for name, data := range f {
		m[path.Base(name)] = base64.StdEncoding.EncodeToString(data)
	}
	return toYAML(m)
}

// --- values -------------------------------------------------------------------------------

// mergeMaps is Helm's merge of -f files and --set values: maps merge, anything else replaces.
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if am, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeMaps(am, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// coalesce is chartutil.CoalesceValues for one chart: user values over the chart's defaults,
// a user null deletes the default.
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(user))
	for k, v := range user {
		out[k] = v
	}
	for k, dv := range defaults {
		uv, present := out[k]
		switch {
		case !present:
			out[k] = dv
		case uv == nil:
			delete(out, k)
		default:
			um, uok := uv.(map[string]interface{})
			dm, dok := dv.(map[string]interface{})
			if uok && dok {
				out[k] = coalesce(um, dm)
			}
		}
	}
	return out
}

func readValues(data []byte) (map[string]interface{}, error) {
	vals := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &vals); err != nil {
		return nil, err
	}
	if vals == nil {
		vals = map[string]interface{}{}
	}
	return vals, nil
}

// splitUnescaped splits s on sep outside braces, honouring backslash escapes.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	var cur strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(c)
			cur.WriteByte(s[i+1])
			i++
		case c == '{':
			depth++
			cur.WriteByte(c)
		case c == '}':
			depth--
			cur.WriteByte(c)
		case c == sep && depth == 0:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// typedVal is strvals' typing of --set values: true/false, null, integers without a leading 0.
func typedVal(s string, asString bool) interface{} {
	if asString {
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
	if s == "0" {
		return int64(0)
	}
	if !strings.HasPrefix(s, "0") {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return s
}

// parseSet applies one --set (or --set-string) argument, "a.b=c,d={x,y}", onto vals.
func parseSet(vals map[string]interface{}, arg string, asString bool) error {
	for _, pair := range splitUnescaped(arg, ',') {
		if pair == "" {
			continue
		}
		eq := strings.IndexByte(pair, '=')
		if eq <= 0 {
			return fmt.Errorf("key %q has no value", pair)
		}
		key, raw := pair[:eq], pair[eq+1:]
		if strings.ContainsAny(key, "[]") {
			return fmt.Errorf("--set %q: list indexes are not supported", key)
		}
		var val interface{}
		if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
			list := []interface{}{}
			if inner := raw[1 : len(raw)-1]; inner != "" {
				for _, item := range splitUnescaped(inner, ',') {
					list = append(list, typedVal(unescape(item), asString))
				}
			}
			val = list
		} else {
			val = typedVal(unescape(raw), asString)
		}
		keys := splitUnescaped(key, '.')
		node := vals
		for i, k := range keys {
			k = unescape(k)
			if i == len(keys)-1 {
				node[k] = val
				break
			}
			next, ok := node[k].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				node[k] = next
			}
			node = next
		}
	}
	return nil
}

// --- template functions -------------------------------------------------------------------

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func required(warn string, val interface{}) (interface{}, error) {
	if val == nil {
		return val, errors.New(warn)
	}
	if s, ok := val.(string); ok && s == "" {
		return val, errors.New(warn)
	}
	return val, nil
}

// lookup answers nothing, as in `helm template` (no cluster).
func lookup(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
	return map[string]interface{}{}, nil
}

func includeFun(t *template.Template, includedNames map[string]int) func(string, interface{}) (string, error) {
	return func(name string, data interface{}) (string, error) {
		var buf strings.Builder
		if v, ok := includedNames[name]; ok {
			if v > recursionMaxNums {
				return "", fmt.Errorf("unable to execute template: rendering template has a nested reference name: %s", name)
			}
			includedNames[name]++
		} else {
			includedNames[name] = 1
		}
		err := t.ExecuteTemplate(&buf, name, data)
		includedNames[name]--
		return buf.String(), err
	}
}

func tplFun(parent *template.Template, includedNames map[string]int) func(string, interface{}) (string, error) {
	return func(text string, vals interface{}) (string, error) {
		t, err := parent.Clone()
		if err != nil {
			return "", fmt.Errorf("cannot clone template: %w", err)
		}
		t.Option("missingkey=zero")
		t.Funcs(template.FuncMap{
			"include": includeFun(t, includedNames),
			"tpl":     tplFun(t, includedNames),
		})
		name := "tpl"
		if m, ok := vals.(map[string]interface{}); ok {
			if tm, ok := m["Template"].(map[string]interface{}); ok {
				if n, ok := tm["Name"].(string); ok && n != "" {
					name = n
				}
			}
		}
		t, err = t.New(name).Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", text, err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
}

func funcMap(t *template.Template, includedNames map[string]int) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	for k, v := range (template.FuncMap{
		"toYaml":        toYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"required":      required,
		"lookup":        lookup,
		"include":       includeFun(t, includedNames),
		"tpl":           tplFun(t, includedNames),
	}) {
		f[k] = v
	}
	return f
}

// --- the chart ----------------------------------------------------------------------------

type ignoreRule struct {
	pattern string
	dirOnly bool
}

func readHelmignore(dir string) []ignoreRule {
	data, err := os.ReadFile(filepath.Join(dir, ".helmignore"))
	if err != nil {
		return nil
	}
	var rules []ignoreRule
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{pattern: strings.TrimPrefix(line, "/")}
		if strings.HasSuffix(r.pattern, "/") {
			r.dirOnly = true
			r.pattern = strings.TrimSuffix(r.pattern, "/")
		}
		rules = append(rules, r)
	}
	return rules
}

func ignored(rules []ignoreRule, rel string, isDir bool) bool {
	for _, r := range rules {
		if r.dirOnly && !isDir {
			continue
		}
		if ok, _ := path.Match(r.pattern, rel); ok {
			return true
		}
		if ok, _ := path.Match(r.pattern, path.Base(rel)); ok {
			return true
		}
	}
	return false
}

type chartFiles struct {
	metadata  *Metadata
	values    map[string]interface{}
	templates map[string]string // name (chart/templates/...) -> text
	files     Files
}

func loadChart(dir string) (*chartFiles, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("Chart.yaml file is missing: %w", err)
	}
	md := &Metadata{}
	if err := yaml.Unmarshal(raw, md); err != nil {
		return nil, fmt.Errorf("cannot load Chart.yaml: %w", err)
	}
	if md.APIVersion != "v1" && md.APIVersion != "v2" {
		return nil, fmt.Errorf("Chart.yaml: apiVersion %q is not v1 or v2", md.APIVersion)
	}
	if md.Name == "" {
		return nil, errors.New("Chart.yaml: name is required")
	}
	if _, err := semver.StrictNewVersion(md.Version); err != nil {
		return nil, fmt.Errorf("Chart.yaml: version %q is not a valid SemVerV2", md.Version)
	}
	if md.Type == "library" {
		return nil, errors.New("library charts are not installable")
	}
	c := &chartFiles{metadata: md, values: map[string]interface{}{}, templates: map[string]string{}, files: Files{}}
	if data, err := os.ReadFile(filepath.Join(dir, "values.yaml")); err == nil {
		if c.values, err = readValues(data); err != nil {
			return nil, fmt.Errorf("cannot load values.yaml: %w", err)
		}
	}
	rules := readHelmignore(dir)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if ignored(rules, rel, info.IsDir()) {
			if info.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if info.IsDir() {
			if rel == "charts" {
				return errors.New("subcharts (charts/) are not supported")
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			c.templates[md.Name+"/"+rel] = string(data)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" || rel == ".helmignore":
		default:
			c.files[rel] = data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// sortTemplates is Helm's order (sort.Reverse(byPathLen)): deepest paths first, then names in
// reverse order. It decides which of two `define`s of one name wins (the last parsed).
func sortTemplates(tpls map[string]string) []string {
	keys := make([]string, 0, len(tpls))
	for k := range tpls {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := strings.Count(keys[i], "/"), strings.Count(keys[j], "/")
		if a != b {
			return a > b
		}
		return keys[i] > keys[j]
	})
	return keys
}

type options struct {
	name, namespace, kubeVersion string
	valueFiles, sets, setStrings []string
	apiVersions                  []string
	asJSON                       bool
}

type manifest struct {
	Source  string                 `json:"source"`
	Content string                 `json:"content"`
	Object  map[string]interface{} `json:"object"`
}

type result struct {
	Values    map[string]interface{} `json:"values"`
	Manifests []manifest             `json:"manifests"`
	Notes     string                 `json:"notes"`
}

// Helm's document separator (pkg/releaseutil SplitManifests).
var docSep = regexp.MustCompile("(?:^|\\s*\n)---\\s*")

func render(dir string, o options) (*result, error) {
	c, err := loadChart(dir)
	if err != nil {
		return nil, err
	}
	kv, err := semver.NewVersion(o.kubeVersion)
	if err != nil {
		return nil, fmt.Errorf("invalid kube version %q: %w", o.kubeVersion, err)
	}
	if c.metadata.KubeVersion != "" {
		constraint, err := semver.NewConstraint(c.metadata.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("Chart.yaml: kubeVersion %q: %w", c.metadata.KubeVersion, err)
		}
		if !constraint.Check(kv) {
			return nil, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", c.metadata.KubeVersion, o.kubeVersion)
		}
	}

	user := map[string]interface{}{}
	for _, f := range o.valueFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		vals, err := readValues(data)
		if err != nil {
			return nil, fmt.Errorf("failed to parse %s: %w", f, err)
		}
		user = mergeMaps(user, vals)
	}
	for _, s := range o.sets {
		if err := parseSet(user, s, false); err != nil {
			return nil, fmt.Errorf("failed parsing --set data: %w", err)
		}
	}
	for _, s := range o.setStrings {
		if err := parseSet(user, s, true); err != nil {
			return nil, fmt.Errorf("failed parsing --set-string data: %w", err)
		}
	}
	values := coalesce(user, c.values)

	caps := &Capabilities{
		KubeVersion: KubeVersion{
			Version: "v" + kv.String(),
			Major:   strconv.FormatUint(kv.Major(), 10),
			Minor:   strconv.FormatUint(kv.Minor(), 10),
		},
		APIVersions: VersionSet(append(append([]string{}, defaultAPIVersions...), o.apiVersions...)),
		HelmVersion: HelmVersion{Version: "v3-compatible (saslgate helm-render)"},
	}
	release := map[string]interface{}{
		"Name":      o.name,
		"Namespace": o.namespace,
		"IsUpgrade": false,
		"IsInstall": true,
		"Revision":  1,
		"Service":   "Helm",
	}

	includedNames := map[string]int{}
	t := template.New("gotpl")
	t.Option("missingkey=zero")
	t.Funcs(funcMap(t, includedNames))
	keys := sortTemplates(c.templates)
	for _, name := range keys {
		if _, err := t.New(name).Parse(c.templates[name]); err != nil {
			return nil, fmt.Errorf("parse error in %q: %w", name, err)
		}
	}

	basePath := c.metadata.Name + "/templates"
	res := &result{Values: values, Manifests: []manifest{}}
	for _, name := range keys {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		vals := map[string]interface{}{
			"Values":       values,
			"Release":      release,
			"Chart":        c.metadata,
			"Capabilities": caps,
			"Files":        c.files,
			"Subcharts":    map[string]interface{}{},
			"Template":     map[string]interface{}{"Name": name, "BasePath": basePath},
		}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name, vals); err != nil {
			return nil, fmt.Errorf("render error in %q: %w", name, err)
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.HasSuffix(name, "NOTES.txt") {
			if name == basePath+"/NOTES.txt" {
				res.Notes = out
			}
			continue
		}
		for _, doc := range docSep.Split(out, -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			doc = strings.TrimSpace(doc) + "\n"
			obj := map[string]interface{}{}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				return nil, fmt.Errorf("YAML parse error on %s: %w", name, err)
			}
			res.Manifests = append(res.Manifests, manifest{Source: name, Content: doc, Object: obj})
		}
	}
	return res, nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var o options
	var files, sets, setStrings, apis multi
	fs := flag.NewFlagSet("helm-render", flag.ContinueOnError)
	fs.StringVar(&o.name, "name", "release-name", "release name")
	fs.StringVar(&o.namespace, "namespace", "default", "release namespace")
	fs.StringVar(&o.kubeVersion, "kube-version", defaultKubeVersion, "Kubernetes version for .Capabilities")
	fs.Var(&files, "f", "values file (repeatable)")
	fs.Var(&files, "values", "values file (repeatable)")
	fs.Var(&sets, "set", "K=V (repeatable)")
	fs.Var(&setStrings, "set-string", "K=V, V kept a string (repeatable)")
	fs.Var(&apis, "api-versions", "extra API version for .Capabilities.APIVersions (repeatable)")
	fs.BoolVar(&o.asJSON, "json", false, "print values, manifests and notes as JSON")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm-render [flags] CHART_DIR")
		os.Exit(2)
	}
	o.valueFiles, o.sets, o.setStrings, o.apiVersions = files, sets, setStrings, apis
	res, err := render(fs.Arg(0), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	if o.asJSON {
		enc := json.NewEncoder(os.Stdout)
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, "Error:", err)
			os.Exit(1)
		}
		return
	}
	for _, m := range res.Manifests {
		fmt.Printf("---\n# Source: %s\n%s", m.Source, m.Content)
	}
}
