/// Node 0's rule for releasing decode rows into the ring, kept apart from the scheduler so it
/// can be tested on its own.
///
/// Sequences that decode travel the ring in groups. A group leaves node 0 only when every
/// member's next token is back, so its rows stay one batch at every stage instead of
/// fragmenting into batches of one as tokens trickle in (each of which would read all the
/// weights again). One group per stage lets every stage work at once when each has its own
/// cores; one group in all suits stages that share cores. A member that is late by `holdLimit`
/// (its token was lost on the way) is let go: the rest run without it, and it joins a group
/// again when its row is ready. A sequence that starts decoding joins the smallest group.
package struct DecodeGroupPlanner {
    /// One decoding sequence as the planner sees it.
    package struct Member: Equatable {
        /// Its group, nil until it first has a row ready (or after it was let go).
        package var group: Int?
        /// Its next decode row is waiting at node 0 (its token came back).
        package var ready: Bool

        package init(group: Int?, ready: Bool) {
            self.group = group
            self.ready = ready
        }
    }

    package let groups: Int
    package let holdLimit: Int
    /// The earliest time a held group must be looked at again, though nothing arrived.
    package private(set) var deadline: Int?
    private var rotation = 0
    private var holdStarted: [Int: Int] = [:]

    /// `groups` groups (at least 1); a group waits at most `holdLimit` (in the unit of `now`)
    /// for a late member.
    package init(groups: Int, holdLimit: Int) {
        self.groups = max(1, groups)
        self.holdLimit = holdLimit
    }

    /// Assigns groups to members that need one and returns the indices of the members whose
    /// rows run now: one group's worth, or none while every group with ready rows still waits.
    package mutating func release(_ members: inout [Member], now: Int) -> [Int] {
        var byGroup = [[Int]](repeating: [], count: groups)
        var joining: [Int] = []
        for i in members.indices {
            if let g = members[i].group, (0 ..< groups).contains(g) {
                byGroup[g].append(i)
            } else {
                members[i].group = nil
                if members[i].ready { joining.append(i) }
            }
        }
        for i in joining {
            var smallest = 0
            for g in 1 ..< groups where byGroup[g].count < byGroup[smallest].count { smallest = g }
            members[i].group = smallest
            byGroup[smallest].append(i)
        }
        var chosen: [Int] = []
        var next: Int?
        for k in 0 ..< groups {
            let g = (rotation + k) % groups
            let ready = byGroup[g].filter { members[$0].ready }
            if ready.isEmpty {
                holdStarted[g] = nil
                continue
            }
            let complete = ready.count == byGroup[g].count
            if chosen.isEmpty {
                let late = !complete && holdStarted[g].map { now - $0 >= holdLimit } ?? false
                if complete || late {
                    for i in byGroup[g] where !members[i].ready { members[i].group = nil }
                    chosen = ready
                    holdStarted[g] = nil
                    rotation = (g + 1) % groups
                    continue
                }
            }
            if complete { continue }
            let since = holdStarted[g] ?? now
            holdStarted[g] = since
            next = min(next ?? .max, since + holdLimit)
        }
        deadline = next
        return chosen
    }
}
