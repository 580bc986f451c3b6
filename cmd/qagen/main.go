// Command qagen runs Celery-compatible Go workers and the tools around them.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	app := &cli.App{
		Name:    "qagen",
		Usage:   "Q&A generation on Celery-compatible Go workers",
		Version: version,
		Commands: []*cli.Command{
			generateCommand(),
			workerCommand(),
			callCommand(),
			inspectCommand(),
			controlCommand(),
			statusCommand(),
			queuesCommand(),
			purgeCommand(),
			fakeLLMCommand(),
			ratelimitCommand(),
		},
	}
	if err := app.Run(interspersed(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "qagen:", err)
		os.Exit(exitCode(err))
	}
}

// interspersed lets flags follow positional arguments (`qagen call TASK
// --args ...`, as with `celery call`): urfave/cli v2 stops at the first
// positional argument, so the positional ones are moved to the end. A
// command with subcommands (`qagen ratelimit set KEY --rpm N`) is handled
// at the subcommand's level.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 3 {
		return args
	}
	cmd := app.Command(args[1])
	if cmd == nil {
		return args
	}
	depth := 2
	for len(cmd.Subcommands) > 0 && len(args) > depth {
		sub := cmd.Command(args[depth])
		if sub == nil {
			return args
		}
		cmd = sub
		depth++
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, name := range f.Names() {
			takesValue[name] = !isBool
		}
	}
	out := append([]string{}, args[:depth]...)
	var positional []string
	rest := args[depth:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			positional = append(positional, rest[i+1:]...)
			i = len(rest)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			out = append(out, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
				i++
				out = append(out, rest[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	return append(append(out, "--"), positional...)
}

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}

// newLogger builds the zerolog logger: console or JSON, to stderr or a file.
func newLogger(level, format string, out io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("unknown log level %q (debug, info, warning, error, critical)", level)
	}
	var w io.Writer = out
	switch format {
	case "json":
	case "console", "":
		w = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339, NoColor: !isTerminal(out)}
	default:
		return zerolog.Logger{}, fmt.Errorf("unknown log format %q (console, json)", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// isTerminal reports whether v (an input or an output) is a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// parseLevel maps Celery's level names onto zerolog's.
func parseLevel(s string) string {
	switch strings.ToLower(s) {
	case "warning":
		return "warn"
	case "critical", "fatal":
		return "fatal"
	}
	return s
}
