// Package group is a group chat's membership: a log of operations (create,
// add, remove, promote, demote, leave, rename, set the disappearing-message
// timer), each signed by its author's account key and chained to the one
// before it by hash, and the group they fold into. A member that holds the
// same operations as another sees the same members, admins, name, timer
// and epoch, whatever order the operations arrived in; an operation its
// author was not allowed to make where it was made is refused, and nothing
// of it is kept.
//
// The package is pure: no network, no storage. The node stores a log's
// operations, sends them to members over the pairwise sessions and asks the
// log what the group is. docs/GROUPS.md is the design: the fork rule
// (Log), the epochs that rotate sender keys (State.Epoch), and what a
// member, a removed member and a mailbox can read.
package group
