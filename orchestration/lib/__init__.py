"""What several domains of the code location share. A domain never imports another domain."""
