// Package doccheck finds broken relative links in the repository's Markdown:
// links to files or directories that do not exist, and #anchors that match no
// heading (by GitHub's slug rules) of the page they point into.
//
// Its test runs it over README.md and docs/*.md, so a moved page or a renamed
// heading fails the root module's tests.
package doccheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// Problem is one broken link.
type Problem struct {
	File   string // the Markdown file, relative to the root
	Line   int    // 1-based
	Target string // the link as written
	Reason string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Target, p.Reason)
}

// Link is a link found in a Markdown text.
type Link struct {
	Line   int
	Target string
}

var (
	// [text](target) and ![alt](target); target may be <...> and may have a title.
	inlineLink = regexp.MustCompile(`!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)(?:\s+"[^"]*")?\s*\)`)
	// [label]: target
	refDef = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*(\S+)`)
	// `code` spans, removed before looking for links.
	codeSpan = regexp.MustCompile("`+[^`]*`+")
	// <a name="x"> or id="x" in HTML, extra anchors.
	htmlAnchor = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
	scheme     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
)

// Links returns the links of a Markdown text, outside fenced code blocks and
// code spans.
func Links(text string) []Link {
	var links []Link
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if f := fenceOf(trimmed); f != "" {
			fence = f
			continue
		}
		line = codeSpan.ReplaceAllString(line, "")
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			links = append(links, Link{Line: i + 1, Target: strings.Trim(m[1], "<>")})
		}
		if m := refDef.FindStringSubmatch(line); m != nil {
			links = append(links, Link{Line: i + 1, Target: strings.Trim(m[1], "<>")})
		}
	}
	return links
}

// fenceOf returns the fence (``` or ~~~, as long as written) that line opens,
// or "".
func fenceOf(line string) string {
	for _, c := range []string{"`", "~"} {
		if strings.HasPrefix(line, c+c+c) {
			n := len(line) - len(strings.TrimLeft(line, c))
			return strings.Repeat(c, n)
		}
	}
	return ""
}

// Anchors returns the anchors GitHub gives a Markdown text's headings
// (ATX headings, # to ######, outside code blocks), with -1, -2, ... for
// repeated slugs, plus any <a name> or id.
func Anchors(text string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	fence := ""
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if f := fenceOf(trimmed); f != "" {
			fence = f
			continue
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			anchors[m[1]] = true
		}
		h := strings.TrimLeft(line, " ")
		if len(line)-len(h) > 3 || !strings.HasPrefix(h, "#") {
			continue
		}
		level := len(h) - len(strings.TrimLeft(h, "#"))
		rest := h[level:]
		if level > 6 || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		s := Slug(strings.TrimRight(strings.TrimSpace(rest), "#"))
		if n, ok := seen[s]; ok {
			seen[s] = n + 1
			anchors[fmt.Sprintf("%s-%d", s, n+1)] = true
			continue
		}
		seen[s] = 0
		anchors[s] = true
	}
	return anchors
}

var mdLink = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)

// Slug is GitHub's anchor for a heading's text: Markdown links reduced to
// their text, lower case, every character that is not a letter, digit,
// mark, '-', '_' or space dropped, spaces turned into '-'.
func Slug(heading string) string {
	heading = mdLink.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Check reads the Markdown files (paths relative to root) and returns every
// relative link among them that does not resolve: a file or directory
// missing under root, a path leaving root, or an anchor that no heading of
// the target Markdown file has. Links with a scheme (https:, mailto:) are
// not checked.
func Check(root string, files []string) ([]Problem, error) {
	var problems []Problem
	anchorCache := map[string]map[string]bool{}
	anchorsOf := func(rel string) (map[string]bool, error) {
		if a, ok := anchorCache[rel]; ok {
			return a, nil
		}
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			return nil, err
		}
		a := Anchors(string(b))
		anchorCache[rel] = a
		return a, nil
	}
	for _, file := range files {
		file = filepath.ToSlash(file)
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
		if err != nil {
			return nil, fmt.Errorf("doccheck: reading %s: %w", file, err)
		}
		for _, l := range Links(string(b)) {
			if reason := checkLink(root, file, l.Target, anchorsOf); reason != "" {
				problems = append(problems, Problem{File: file, Line: l.Line, Target: l.Target, Reason: reason})
			}
		}
	}
	return problems, nil
}

func checkLink(root, file, target string, anchorsOf func(string) (map[string]bool, error)) string {
	if target == "" {
		return "empty link"
	}
	if scheme.MatchString(target) || strings.HasPrefix(target, "//") {
		return ""
	}
	path, frag, _ := strings.Cut(target, "#")
	if i := strings.Index(path, "?"); i >= 0 {
		path = path[:i]
	}
	rel := file
	if path != "" {
		if strings.HasPrefix(path, "/") {
			return "absolute path: GitHub resolves it against the site, not the repository; use a relative link"
		}
		rel = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(filepath.FromSlash(file)), filepath.FromSlash(path))))
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return "leaves the repository"
		}
		fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			return fmt.Sprintf("%s does not exist", rel)
		}
		if fi.IsDir() {
			if frag != "" {
				return "an anchor into a directory"
			}
			return ""
		}
	}
	if frag == "" {
		return ""
	}
	if !strings.HasSuffix(rel, ".md") {
		return fmt.Sprintf("anchor #%s into %s, which is not Markdown", frag, rel)
	}
	anchors, err := anchorsOf(rel)
	if err != nil {
		return err.Error()
	}
	if !anchors[frag] {
		return fmt.Sprintf("%s has no heading with the anchor #%s", rel, frag)
	}
	return ""
}
