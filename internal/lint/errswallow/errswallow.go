// Package errswallow is a vet analyzer that reports an error which is checked and then
// vanishes: an `if err != nil { ... }` whose body never uses err. Such a body turns every
// failure into the same answer — a handler once answered "tenant sells no policy" (404) for a
// dropped database connection because its `if err != nil { return notFound }` never looked at
// the error. Using err in the body in any way (returning, wrapping, logging, comparing it with
// errors.Is, passing it on) satisfies the analyzer, and so does a condition that already
// classifies the error beside the nil check (`err != nil && !errors.Is(err, pgx.ErrNoRows)`).
//
// A deliberate drop is marked with a `//lint:swallow <reason>` comment at the end of the if's
// line or on the line just above it; the reason is required. Test files and generated files are
// not checked.
package errswallow

import (
	"go/ast"
	"go/token"
	"go/types"
	"strings"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/passes/inspect"
	"golang.org/x/tools/go/ast/inspector"
)

// Directive marks an if statement whose error is dropped on purpose; a reason must follow it.
const Directive = "//lint:swallow"

// Analyzer reports `if err != nil` bodies that never use err.
var Analyzer = &analysis.Analyzer{
	Name:     "errswallow",
	Doc:      "report `if err != nil { ... }` bodies that never use err (mark a deliberate drop with //lint:swallow <reason>)",
	URL:      "https://pkg.go.dev/github.com/tessera/tessera/internal/lint/errswallow",
	Requires: []*analysis.Analyzer{inspect.Analyzer},
	Run:      run,
}

func run(pass *analysis.Pass) (any, error) {
	in := pass.ResultOf[inspect.Analyzer].(*inspector.Inspector)
	for fileCur := range in.Root().Children() {
		file := fileCur.Node().(*ast.File)
		name := pass.Fset.Position(file.Pos()).Filename
		if strings.HasSuffix(name, "_test.go") || ast.IsGenerated(file) {
			continue
		}
		directives := swallowDirectives(pass.Fset, file)
		for cur := range fileCur.Preorder((*ast.IfStmt)(nil)) {
			checkIf(pass, cur.Node().(*ast.IfStmt), cur, directives)
		}
	}
	return nil, nil
}

// checkIf reports stmt when its condition checks an error against nil and neither the rest of
// the condition nor the body uses that error.
func checkIf(pass *analysis.Pass, stmt *ast.IfStmt, cur inspector.Cursor, directives map[int]string) {
	check, obj := nilCheck(pass.TypesInfo, stmt.Cond)
	if obj == nil {
		return
	}
	if uses(pass.TypesInfo, stmt.Cond, obj) > 1 || uses(pass.TypesInfo, stmt.Body, obj) > 0 {
		return
	}
	if returnsNamed(pass.TypesInfo, stmt.Body, cur, obj) {
		return
	}
	line := pass.Fset.Position(stmt.Pos()).Line
	for _, l := range []int{line, line - 1} {
		if reason, ok := directives[l]; ok {
			if reason == "" {
				pass.Reportf(check.Pos(), "%s needs a reason: say why dropping %s here is right", Directive, obj.Name())
			}
			return
		}
	}
	pass.Reportf(check.Pos(), "%s is checked but never used in the if body, so every failure looks alike: "+
		"return, wrap, log or compare it, or mark a deliberate drop with %s <reason>", obj.Name(), Directive)
}

// nilCheck finds `x != nil` with x an error variable in cond, alone or as an operand of &&.
func nilCheck(info *types.Info, cond ast.Expr) (ast.Expr, types.Object) {
	switch e := ast.Unparen(cond).(type) {
	case *ast.BinaryExpr:
		switch e.Op {
		case token.LAND:
			if check, obj := nilCheck(info, e.X); obj != nil {
				return check, obj
			}
			return nilCheck(info, e.Y)
		case token.NEQ:
			id, ok := ast.Unparen(e.X).(*ast.Ident)
			if !ok || !isNil(info, e.Y) {
				return nil, nil
			}
			obj := info.Uses[id]
			if v, ok := obj.(*types.Var); ok && isError(v.Type()) {
				return e, v
			}
		}
	}
	return nil, nil
}

func isNil(info *types.Info, e ast.Expr) bool {
	id, ok := ast.Unparen(e).(*ast.Ident)
	if !ok {
		return false
	}
	_, isNil := info.Uses[id].(*types.Nil)
	return isNil
}

var errorType = types.Universe.Lookup("error").Type().Underlying().(*types.Interface)

func isError(t types.Type) bool {
	return types.Implements(t, errorType)
}

// uses counts the identifiers in n that refer to obj.
func uses(info *types.Info, n ast.Node, obj types.Object) int {
	count := 0
	ast.Inspect(n, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && info.Uses[id] == obj {
			count++
		}
		return true
	})
	return count
}

// returnsNamed reports whether body has a bare return in a function that names obj as one of
// its results, which returns the error without naming it.
func returnsNamed(info *types.Info, body *ast.BlockStmt, cur inspector.Cursor, obj types.Object) bool {
	var results *ast.FieldList
	for c := range cur.Enclosing((*ast.FuncDecl)(nil), (*ast.FuncLit)(nil)) {
		switch fn := c.Node().(type) {
		case *ast.FuncDecl:
			results = fn.Type.Results
		case *ast.FuncLit:
			results = fn.Type.Results
		}
		break
	}
	named := false
	if results != nil {
		for _, field := range results.List {
			for _, name := range field.Names {
				if info.Defs[name] == obj {
					named = true
				}
			}
		}
	}
	if !named {
		return false
	}
	bare := false
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.ReturnStmt:
			if len(n.Results) == 0 {
				bare = true
			}
		}
		return true
	})
	return bare
}

// swallowDirectives maps the line of each //lint:swallow comment in file to its reason.
func swallowDirectives(fset *token.FileSet, file *ast.File) map[int]string {
	directives := map[int]string{}
	for _, group := range file.Comments {
		for _, c := range group.List {
			rest, ok := strings.CutPrefix(c.Text, Directive)
			if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
				continue
			}
			directives[fset.Position(c.Pos()).Line] = strings.TrimSpace(rest)
		}
	}
	return directives
}
