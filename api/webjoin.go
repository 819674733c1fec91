package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// The web app is plain ES modules in the repository and in the binary (no
// build step, no npm), but a browser that loads fourteen modules asks for
// each one as it discovers it, and on a cold load those requests cost more
// than the code (docs/BENCHMARKS.md, "page ready"). So the node joins them
// itself, once at start, with esbuild's Go library: every module script the
// page names becomes one module holding everything it imports, statically
// or with import(), and a source map that shows the original files in the
// browser's developer tools. The sources stay served under their own names.

// moduleScript and modulePreload find the tags the joining replaces.
var (
	moduleScript  = regexp.MustCompile(`<script type="module" src="/([^"]+)"></script>`)
	modulePreload = regexp.MustCompile(`<link rel="modulepreload" href="/([^"]+)">\n?`)
)

// joined is one entry module with everything it imports.
type joined struct {
	code, sourceMap []byte
	inputs          []string // the source files it holds, fsys paths
}

// joinModules joins the module at entry (a path in fsys) and every module
// it imports into one. An import it cannot resolve inside fsys, or one
// whose path is computed at run time, is an error: the joined module would
// otherwise load a second copy of modules it already holds.
func joinModules(fsys fs.FS, entry string) (*joined, error) {
	const ns = "app"
	embedded := api.Plugin{Name: "embedded", Setup: func(b api.PluginBuild) {
		b.OnResolve(api.OnResolveOptions{Filter: `.*`}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
			p := a.Path
			switch {
			case a.Kind == api.ResolveEntryPoint:
			case strings.HasPrefix(p, "./") || strings.HasPrefix(p, "../"):
				p = path.Join(path.Dir(a.Importer), p)
			default:
				return api.OnResolveResult{}, fmt.Errorf("import %q: only relative imports of the app's own files are joined", p)
			}
			return api.OnResolveResult{Path: path.Clean("/" + p), Namespace: ns}, nil
		})
		b.OnLoad(api.OnLoadOptions{Filter: `.*`, Namespace: ns}, func(a api.OnLoadArgs) (api.OnLoadResult, error) {
			raw, err := fs.ReadFile(fsys, strings.TrimPrefix(a.Path, "/"))
			if err != nil {
				return api.OnLoadResult{}, err
			}
			s := string(raw)
			return api.OnLoadResult{Contents: &s, Loader: api.LoaderJS}, nil
		})
	}}
	out := path.Base(entry)
	r := api.Build(api.BuildOptions{
		EntryPoints: []string{entry},
		Bundle:      true,
		Format:      api.FormatESModule,
		Charset:     api.CharsetUTF8,
		Sourcemap:   api.SourceMapLinked,
		Outdir:      "/out",
		Write:       false,
		Metafile:    true,
		LogLevel:    api.LogLevelSilent,
		Plugins:     []api.Plugin{embedded},
	})
	var errs []error
	for _, m := range append(r.Errors, r.Warnings...) {
		where := ""
		if m.Location != nil {
			where = fmt.Sprintf("%s:%d: ", strings.TrimPrefix(m.Location.File, ns+":/"), m.Location.Line)
		}
		errs = append(errs, errors.New(where+m.Text))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	j := &joined{}
	for _, f := range r.OutputFiles {
		switch path.Base(f.Path) {
		case out:
			j.code = f.Contents
		case out + ".map":
			j.sourceMap = f.Contents
		default:
			return nil, fmt.Errorf("joining %s gave a second file, %s", entry, f.Path)
		}
	}
	var meta struct{ Inputs map[string]json.RawMessage }
	if err := json.Unmarshal([]byte(r.Metafile), &meta); err != nil {
		return nil, fmt.Errorf("joining %s: its metafile: %w", entry, err)
	}
	for in := range meta.Inputs {
		j.inputs = append(j.inputs, strings.TrimPrefix(in, ns+":/"))
	}
	if j.code == nil {
		return nil, fmt.Errorf("joining %s gave no module", entry)
	}
	return j, nil
}

// joinPage joins every module script page names, in files (the app's files
// by path, the joined modules replacing their entries' files and their
// source maps added), and returns the page without the modulepreload tags
// of files the joined modules now hold. A module that can't be joined is
// served as it is, its imports loaded one by one as before, and reported.
func joinPage(fsys fs.FS, page string, files map[string]*webFile) (string, error) {
	var errs []error
	held := map[string]bool{}
	for _, m := range moduleScript.FindAllStringSubmatch(page, -1) {
		entry := m[1]
		j, err := joinModules(fsys, entry)
		if err != nil {
			errs = append(errs, fmt.Errorf("joining %s: %w", entry, err))
			continue
		}
		files[entry] = newWebFile(entry, j.code)
		files[entry+".map"] = newWebFile(entry+".map", j.sourceMap)
		for _, in := range j.inputs {
			held[in] = true
		}
	}
	page = modulePreload.ReplaceAllStringFunc(page, func(tag string) string {
		if held[modulePreload.FindStringSubmatch(tag)[1]] {
			return ""
		}
		return tag
	})
	return page, errors.Join(errs...)
}
