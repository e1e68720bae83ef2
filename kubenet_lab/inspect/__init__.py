"""Reading the lab as data and explaining it: the rule tracer over rendered rules."""
