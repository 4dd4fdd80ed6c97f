import Node
import Testing

@Suite struct DecodeGroupPlannerTests {
    typealias Member = DecodeGroupPlanner.Member

    @Test func aGroupWaitsForEveryMemberThenGoesAsOne() {
        var planner = DecodeGroupPlanner(groups: 1, holdLimit: 100)
        var members = [Member(group: 0, ready: true), Member(group: 0, ready: false), Member(group: 0, ready: true)]
        #expect(planner.release(&members, now: 0).isEmpty)
        #expect(planner.deadline == 100)
        members[1].ready = true
        #expect(planner.release(&members, now: 10) == [0, 1, 2])
        #expect(planner.deadline == nil)
    }

    @Test func aSequenceThatStartsDecodingJoinsTheSmallestGroup() {
        var planner = DecodeGroupPlanner(groups: 2, holdLimit: 100)
        // Group 0 has two members in flight, group 1 one: the newcomer joins group 1 and waits
        // for its member instead of starting a cohort of its own.
        var members = [Member(group: 0, ready: false), Member(group: 0, ready: false), Member(group: 1, ready: false),
                       Member(group: nil, ready: true)]
        #expect(planner.release(&members, now: 0).isEmpty)
        #expect(members[3].group == 1)
        members[2].ready = true
        #expect(planner.release(&members, now: 5) == [2, 3])
    }

    @Test func aLateMemberIsLetGoAfterTheHoldLimit() {
        var planner = DecodeGroupPlanner(groups: 1, holdLimit: 100)
        var members = [Member(group: 0, ready: true), Member(group: 0, ready: false)]
        #expect(planner.release(&members, now: 1000).isEmpty)
        #expect(planner.release(&members, now: 1099).isEmpty)
        #expect(planner.release(&members, now: 1100) == [0])
        #expect(members[1].group == nil)
        // When its row is ready it joins again, and the group no longer waits for anyone.
        members[0].ready = false
        members[1].ready = true
        var planned = planner.release(&members, now: 1200)
        #expect(planned.isEmpty && members[1].group == 0)
        members[0].ready = true
        planned = planner.release(&members, now: 1201)
        #expect(planned == [0, 1])
    }

    @Test func readyGroupsTakeTurns() {
        var planner = DecodeGroupPlanner(groups: 3, holdLimit: 100)
        var members = (0 ..< 6).map { Member(group: $0 % 3, ready: true) }
        var order: [[Int]] = []
        for _ in 0 ..< 3 {
            let chosen = planner.release(&members, now: 0)
            order.append(chosen)
            for i in chosen { members[i].ready = false }
        }
        #expect(order == [[0, 3], [1, 4], [2, 5]])
        #expect(planner.release(&members, now: 0).isEmpty)
        #expect(planner.deadline == nil)
    }

    @Test func aGroupNumberOutOfRangeIsReassigned() {
        var planner = DecodeGroupPlanner(groups: 2, holdLimit: 100)
        var members = [Member(group: 7, ready: true), Member(group: -1, ready: false)]
        #expect(planner.release(&members, now: 0) == [0])
        #expect(members[0].group == 0 && members[1].group == nil)
    }
}
