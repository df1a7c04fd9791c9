// Package dockerfile reads a Dockerfile into stages and instructions so that
// tests can check the images' properties statically: no base image can be
// pulled on the machines that run stateshift's tests.
package dockerfile

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Instruction is one Dockerfile instruction with continuations joined.
type Instruction struct {
	Cmd  string // upper case: FROM, RUN, COPY, USER, ...
	Args string
	Line int
}

// Stage is everything from one FROM to the next.
type Stage struct {
	// Base is the FROM image with the global ARG defaults substituted
	// (FROM ${GO_IMAGE} with ARG GO_IMAGE=golang:1 gives golang:1);
	// BaseArg is the FROM image as written.
	Base, BaseArg string
	Name          string
	Instructions  []Instruction
}

// Find returns the stage's instructions of one kind.
func (s Stage) Find(cmd string) []Instruction {
	var out []Instruction
	for _, in := range s.Instructions {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// Parse reads a Dockerfile.
func Parse(path string) ([]Stage, error) {
	stages, _, err := parse(path)
	return stages, err
}

// GlobalArgs returns the ARGs before the first FROM with their defaults
// ("" for an ARG without one): the build arguments that choose base images.
func GlobalArgs(path string) (map[string]string, error) {
	_, args, err := parse(path)
	return args, err
}

// expand substitutes ${NAME} and $NAME from args, as the builder does in FROM.
func expand(s string, args map[string]string) string {
	return os.Expand(s, func(name string) string {
		if v, ok := args[name]; ok {
			return v
		}
		return "${" + name + "}"
	})
}

func parse(path string) ([]Stage, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = f.Close() }()
	var stages []Stage
	globals := map[string]string{}
	var cur strings.Builder
	start, n := 0, 0
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := Instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			if len(f) == 0 {
				return fmt.Errorf("%s:%d: FROM without an image", path, start)
			}
			st := Stage{Base: expand(f[0], globals), BaseArg: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if in.Cmd == "ARG" {
				name, value, _ := strings.Cut(in.Args, "=")
				globals[strings.TrimSpace(name)] = strings.Trim(strings.TrimSpace(value), `"`)
				return nil
			}
			return fmt.Errorf("%s:%d: %s before FROM", path, start, in.Cmd)
		}
		stages[len(stages)-1].Instructions = append(stages[len(stages)-1].Instructions, in)
		return nil
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		} else if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSpace(strings.TrimSuffix(trimmed, "\\")) + " ")
			continue
		}
		cur.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	return stages, globals, nil
}
