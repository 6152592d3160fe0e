"""Call flows: what a call does once answered, rendered for the carrier (TwiML in `callbridge.flow.twiml`)."""
