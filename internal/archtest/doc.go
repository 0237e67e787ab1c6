// Package archtest holds tests of the module's shape rather than of its
// behaviour: which packages may depend on which. It has no code of its own.
package archtest
