"""The names of the events on a call's timeline: each written by one step and read by others, defined once here.

The console shows them in words (static/console), and `GET /pcall/calls/{callid}` returns them as they are.
"""

from __future__ import annotations

# accepted, and the end of a call that never reached the carrier
ACCEPTED = "accepted"  # POST /pcall/call (or a campaign, or another AWS service) stored the call
REJECTED = "rejected"  # a request from another AWS service that could not become a call
CANCELED = "canceled"  # cancelled before it was dialed (by the API or its campaign), or hung up
SUPPRESSED = "suppressed"  # the number was on the do-not-call list when the call was about to be dialed

# the scheduler and the queue
DISPATCHED = "dispatched"  # a SCHEDULED or RETRY_WAIT call's message sent (it keeps its status until claimed)
REQUEUED = "requeued"  # an unclaimed call's message sent to the queue again
RECONCILED = "reconciled"  # the carrier was asked about a call with no final callback
DEAD_LETTER = "dead_letter"  # the queue gave up on the call's message
RELEASED = "released"  # a campaign's call sent to the queue at its campaign's pace

# the placer
DIALING = "dialing"  # the placer claimed the call
PACING_WAIT = "pacing.wait"  # no carrier slot for the call yet: its message comes back later
CARRIER_CREATED = "carrier.created"  # the carrier accepted the create-call request
CARRIER_RETRY = "carrier.retry"  # the placer put the call back to QUEUED to retry later
CARRIER_UNCERTAIN = "carrier.uncertain"  # the request may have reached the carrier; reconciliation decides
CARRIER_REJECTED = "carrier.rejected"  # the carrier refused the call for good
CARRIER_HANGUP = "carrier.hangup"  # DELETE /pcall/calls/{callid} asked the carrier to end the call

# the carrier's webhooks
CARRIER_STATUS = "carrier.status"  # a status callback
CARRIER_IGNORED = "carrier.ignored"  # a callback about another carrier call (another CallSid): kept only
CARRIER_RECORDING = "carrier.recording"  # a recording status callback
FLOW = "flow"  # the carrier asked for the answered call's TwiML: the call is answered
IVR_DIGITS = "ivr.digits"  # a key pressed in a menu (an option or not)
IVR_NO_INPUT = "ivr.no_input"  # a menu heard no key
IVR_ENDED = "ivr.ended"  # a menu ended without a valid key (an invalid key or none)
FLOW_ERROR = "flow.error"  # the carrier could not fetch or run the call's TwiML (its fallback URL): hung up
DIAL_ENDED = "dial.ended"  # the second leg of answer_dial ended
DIAL_SECOND_LEG = "dial.second_leg"  # the dial-tone bridge's second leg dialed (or the dialing failed)
DIAL_SECOND_LEG_STATUS = "dial.second_leg.status"  # the second leg's status callback
DIAL_NOT_BRIDGED = "dial.not_bridged"  # the second leg ended unanswered: the caller is told and hung up
DIAL_NOT_BRIDGED_ERROR = "dial.not_bridged.error"  # telling the caller failed (the carrier refused the redirect)
SMS = "sms"  # the SMS of answer_sms sent (or refused)
SMS_STATUS = "sms.status"  # the SMS's status callback

# attempts
RETRY_SCHEDULED = "retry.scheduled"  # an attempt ended and another one follows at next_attempt_at
WINDOW_CLOSED = "window.closed"  # an attempt waits for its calling window's next opening
HANGUP = "hangup"  # DELETE /pcall/calls/{callid} ended the attempt at the carrier: never retried

# the outcome callback
CALLBACK = "callback"  # one delivery attempt of the outcome to callback_url

# campaigns
CAMPAIGN_PAUSED = "campaign.paused"  # a call claimed while its campaign is paused waits again
