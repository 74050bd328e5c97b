// hclcheck parses Terraform configurations with HashiCorp's HCL parser (Debian's
// golang-github-hashicorp-hcl-v2-dev) and checks what `terraform validate` would about
// names: every var.X is declared by a variable block of its module, every local.X by a
// locals block, every module call passes only variables the module declares and every one
// it requires, and every variable has a description and a type.
//
// Usage: hclcheck DIR...   (each DIR one module: its *.tf files)
// Prints one line per problem; exits 1 if there is any, 0 otherwise.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

type module struct {
	dir       string
	variables map[string]*hclsyntax.Block
	locals    map[string]bool
	calls     []*hclsyntax.Block
	refs      []hcl.Traversal
}

var problems int

func problem(rng hcl.Range, format string, args ...interface{}) {
	problems++
	fmt.Printf("%s:%d: %s\n", rng.Filename, rng.Start.Line, fmt.Sprintf(format, args...))
}

func load(dir string) *module {
	m := &module{dir: dir, variables: map[string]*hclsyntax.Block{}, locals: map[string]bool{}}
	files, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	sort.Strings(files)
	if len(files) == 0 {
		problems++
		fmt.Printf("%s: no .tf files\n", dir)
	}
	p := hclparse.NewParser()
	for _, name := range files {
		f, diags := p.ParseHCLFile(name)
		for _, d := range diags {
			problems++
			fmt.Println(d.Error())
		}
		if f == nil {
			continue
		}
		body := f.Body.(*hclsyntax.Body)
		for _, b := range body.Blocks {
			switch b.Type {
			case "variable":
				if len(b.Labels) == 1 {
					m.variables[b.Labels[0]] = b
				}
			case "locals":
				for name := range b.Body.Attributes {
					m.locals[name] = true
				}
			case "module":
				m.calls = append(m.calls, b)
			}
		}
		hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			if e, ok := n.(hclsyntax.Expression); ok {
				if st, ok := e.(*hclsyntax.ScopeTraversalExpr); ok {
					m.refs = append(m.refs, st.Traversal)
				}
			}
			return nil
		})
	}
	return m
}

func check(m *module) {
	for _, t := range m.refs {
		if len(t) < 2 {
			continue
		}
		attr, ok := t[1].(hcl.TraverseAttr)
		if !ok {
			continue
		}
		switch t.RootName() {
		case "var":
			if m.variables[attr.Name] == nil {
				problem(t.SourceRange(), "var.%s is not declared in %s", attr.Name, m.dir)
			}
		case "local":
			if !m.locals[attr.Name] {
				problem(t.SourceRange(), "local.%s is not defined in %s", attr.Name, m.dir)
			}
		}
	}
	for name, b := range m.variables {
		if _, ok := b.Body.Attributes["description"]; !ok {
			problem(b.DefRange(), "variable %q has no description", name)
		}
		if _, ok := b.Body.Attributes["type"]; !ok {
			problem(b.DefRange(), "variable %q has no type", name)
		}
	}
	for _, call := range m.calls {
		src, ok := call.Body.Attributes["source"]
		if !ok {
			problem(call.DefRange(), "module %q has no source", call.Labels[0])
			continue
		}
		v, diags := src.Expr.Value(nil)
		if diags.HasErrors() || v.Type().FriendlyName() != "string" {
			continue
		}
		sub := load(filepath.Join(m.dir, v.AsString()))
		for name, a := range call.Body.Attributes {
			switch name {
			case "source", "version", "count", "for_each", "providers", "depends_on":
				continue
			}
			if sub.variables[name] == nil {
				problem(a.SrcRange, "module %q: %s is not a variable of %s", call.Labels[0], name, sub.dir)
			}
		}
		for name, b := range sub.variables {
			if _, hasDefault := b.Body.Attributes["default"]; hasDefault {
				continue
			}
			if _, given := call.Body.Attributes[name]; !given {
				problem(call.DefRange(), "module %q: required variable %s is not given", call.Labels[0], name)
			}
		}
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "hclcheck: error: usage: hclcheck DIR...")
		os.Exit(64)
	}
	for _, dir := range os.Args[1:] {
		check(load(dir))
	}
	if problems > 0 {
		os.Exit(1)
	}
}
