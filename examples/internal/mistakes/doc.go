// Package mistakes holds no code, only tests: the careless attempts of a
// newcomer moving an app to pgentra (issue 15), each run against the
// offline emulator, each asserting that what the newcomer sees — pgentra's
// error and its hint, or the docs/troubleshooting.md case that explains a message pgentra
// never gets to see — names the fix.
package mistakes
