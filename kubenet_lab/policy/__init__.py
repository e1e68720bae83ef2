"""NetworkPolicy, pure: which pods a policy selects and which peers its rules admit (select),
the verdict for a connection with the policy and rule that decided it (verdict), and the
nftables table that enforces the policies in a node (nftables). fabric applies that table."""
