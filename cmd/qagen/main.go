// Command qagen runs Celery-compatible Go workers and the tools around them.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

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
			workerCommand(),
			callCommand(),
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "qagen:", err)
		os.Exit(exitCode(err))
	}
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

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func init() {
	// Celery's level names.
	zerolog.LevelFieldName = "level"
}

func parseLevel(s string) string {
	switch strings.ToLower(s) {
	case "warning":
		return "warn"
	case "critical", "fatal":
		return "fatal"
	}
	return s
}
