package agent_test

import "github.com/twmb/franz-go/pkg/kmsg"

// The KIP-848 consumer group APIs' cases of TestEveryAPIDeclaresItsPermission.
func init() {
	permCases[kmsg.ConsumerGroupHeartbeat.Int16()] = permCase{
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
			r.Group, r.MemberID, r.MemberEpoch, r.RebalanceTimeoutMillis = permGroup, "perm-member", 0, 10000
			r.SubscribedTopicNames = []string{permTopic}
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode },
	}
	permCases[kmsg.ConsumerGroupDescribe.Int16()] = permCase{
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrConsumerGroupDescribeRequest()
			r.Groups = []string{permGroup}
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.ConsumerGroupDescribeResponse).Groups[0].ErrorCode },
	}
}
