// Command dynamic is a program linked against libc (cgo), which the lab
// refuses to put into its images.
package main

/*
int answer(void) { return 42; }
*/
import "C"

func main() { _ = C.answer() }
