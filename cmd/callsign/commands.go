package main

// commands is every command, in the order help lists them. Names are
// `noun verb`; a command without a verb shows the noun (status, peers).
// The short forms the CLI had before it grouped its commands stay as
// aliases, so scripts and the README's walkthrough keep working.
//
// A new group is a new first word: `devices list` and `devices link`
// sit beside `contacts list` with nothing else to wire up.
func commands() []*command {
	cmds := []*command{
		upCommand(),
		webCommand(),
		idCommand(),
		inviteCommand(),
		{name: "status", summary: "show peers, routing table, relays and encryption", read: true, run: runStatus},
		{name: "peers", summary: "list connected peers", read: true, run: runPeers},

		{name: "handle claim", args: "NAME", summary: "claim a global handle (returns once confirmed by a read)", read: true, run: runClaim},
		{name: "handle list", summary: "list the handles this node holds", read: true, run: runHandles},
		{name: "handle resolve", aliases: []string{"whois"}, args: "NAME",
			summary: "resolve a handle, name~suffix or account id", read: true, run: runWhois},

		contactsAddCommand(),
		{name: "contacts rm", aliases: []string{"contacts remove"}, args: "NAME", summary: "remove a contact", run: runContactsRm},
		{name: "contacts list", summary: "list contacts", read: true, run: runContactsList},
		verifyCommand(),
		{name: "contacts block", aliases: []string{"block"}, args: "NAME",
			summary: "block someone: their messages are dropped silently", run: contactAction("block")},
		{name: "contacts unblock", aliases: []string{"unblock"}, args: "NAME", summary: "unblock someone", run: contactAction("unblock")},
		{name: "contacts follow", aliases: []string{"follow"}, args: "NAME", summary: "follow someone", run: contactAction("follow")},
		{name: "contacts unfollow", aliases: []string{"unfollow"}, args: "NAME", summary: "stop following someone", run: contactAction("unfollow")},

		sendCommand(),
		messagesCommand(),
		{name: "messages save", aliases: []string{"save"}, args: "ID [DIR]",
			summary: "save the file message ID carries into DIR (default: the current directory)", read: true, run: runSave},
		{name: "requests list", aliases: []string{"requests"},
			summary: "list message requests and group invitations from people who are not your contacts", read: true, run: runRequests},
		{name: "requests accept", aliases: []string{"accept"}, args: "NAME",
			summary: "accept a message request (the sender becomes a contact), or join the group of an invitation", run: runRequestAccept,
			details: []string{"NAME is the sender of a message request, or the group (name or id) of an invitation."}},
		{name: "requests decline", args: "NAME", summary: "decline an invitation to a group (as `group leave` does)", run: runRequestDecline},
		{name: "requests block", args: "NAME",
			summary: "block the sender of a message request, or decline an invitation to a group and block who sent it", run: runRequestBlock},
	}
	cmds = append(cmds, groupCommands()...)
	return append(cmds, []*command{
		callCommand(),
		{name: "calls list", aliases: []string{"calls"},
			summary: "list live calls and the call log, newest first, with the IDs answer, decline and hangup take",
			read:    true, run: runCalls},
		answerCommand(),
		{name: "calls decline", aliases: []string{"decline"}, args: "[ID]",
			summary: "decline a ringing call (default: the one ringing now)", run: callAction("decline")},
		{name: "calls hangup", aliases: []string{"hangup"}, args: "[ID]",
			summary: "hang up a live call (default: the one live now)", run: callAction("hangup")},
		settingsCallsCommand(),

		devicesLinkCommand(),
		devicesConfirmCommand(),
		devicesStatusCommand(),
		devicesCancelCommand(),
		devicesListCommand(),
		devicesRevokeCommand(),

		backupCreateCommand(),
		backupVerifyCommand(),
		storeVerifyCommand(),
		versionCommand(),
	}...)
}
