"""`make bench`: every stage timed on N customers against its floor (the same work done the most
direct way) measured in the same run; a benchmark, not a test."""
