// Package docs holds corral's design documents (the *.md files beside this one) and the test
// that keeps the repository self-contained: every reference to a document names one that is in
// the repository, and every section it cites exists.
package docs
