// Package ctxio holds io helpers that honour a context: a long copy of a
// layer or an archive stops once its build or command is cancelled.
//
// It imports only the standard library; no builder package may be imported
// here.
package ctxio
