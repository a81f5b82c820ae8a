// Package benchcmp is the one bench method of statelab's benches (`statelab
// bench tcp|dns|quic|http`): the sides of a comparison run in interleaved
// rounds (Interleave), each side's CPU time is read from getrusage around
// its turn (ProcessCPU, ChildCPU), and every comparison is summarised the
// same way (Compare): the per-round ratio lab ÷ baseline of the compared
// figure (higher is better for the lab) with its median, minimum and
// maximum, and the per-round ratio of CPU time per unit of work (lower is
// better for the lab) with its median. On a shared, noisy machine the
// throughput ratios swing; CPU time per unit of work holds much better, so
// both are reported, and a spread too wide to judge is said so (TooWide).
//
//	interleave.go  Interleave, and the CPU readings (ProcessCPU, ChildCPU, Measure)
//	compare.go     Side, Round, Comparison: Compare and its medians
package benchcmp
