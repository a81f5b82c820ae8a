package lab

// Summary draws one conclusion across a group's experiments — which
// experiment reached which TCP state, a comparison table filled from several
// runs — after the last of them in a run. Its report follows the group's
// experiments, named "<group>/*", with Summary set.
type Summary struct {
	Group string
	// Shows is the sentence the summary report opens with.
	Shows string
	// Build reads the group's reports, in run order. complete says whether
	// every experiment of the group ran; a summary whose conclusion needs
	// them all checks only when complete.
	Build func(reports []*Report, complete bool) (tables []Table, checks []Check)
}

// summarise builds the summary report of group from its reports, or returns
// nil when the group has no summary.
func (c *Catalogue) summarise(group string, reports []*Report) *Report {
	s, ok := c.summaries[group]
	if !ok || len(reports) == 0 {
		return nil
	}
	tables, checks := s.Build(reports, len(reports) == c.groupSize(group))
	r := &Report{Experiment: group + "/*", Shows: s.Shows, Summary: true,
		Checks: checks, Tables: tables, Metrics: map[string]float64{}}
	failed := false
	for _, c := range checks {
		failed = failed || !c.Passed
	}
	// A summary with nothing to check (part of the group ran) informs
	// without failing.
	r.Passed = !failed
	return r
}
