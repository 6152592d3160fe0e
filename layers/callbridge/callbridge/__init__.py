"""callbridge: outbound calls placed and scheduled programmatically, serverlessly on AWS."""
