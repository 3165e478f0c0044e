package agent_test

import "github.com/twmb/franz-go/pkg/kmsg"

// The share group APIs' cases of TestEveryAPIDeclaresItsPermission.
func init() {
	permCases[kmsg.ShareGroupHeartbeat.Int16()] = permCase{
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrShareGroupHeartbeatRequest()
			r.GroupID, r.MemberID, r.SubscribedTopicNames = permGroup, "m", []string{permTopic}
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.ShareGroupHeartbeatResponse).ErrorCode },
	}
	permCases[kmsg.ShareGroupDescribe.Int16()] = permCase{
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrShareGroupDescribeRequest()
			r.GroupIDs = []string{permGroup}
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.ShareGroupDescribeResponse).Groups[0].ErrorCode },
	}
	permCases[kmsg.ShareFetch.Int16()] = permCase{
		req: func(e permEnv) kmsg.Request {
			r := kmsg.NewPtrShareFetchRequest()
			r.GroupID, r.MemberID = kmsg.StringPtr(permGroup), kmsg.StringPtr("m")
			t := kmsg.NewShareFetchRequestTopic()
			t.TopicID = e.topicID
			t.Partitions = append(t.Partitions, kmsg.NewShareFetchRequestTopicPartition())
			r.Topics = append(r.Topics, t)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.ShareFetchResponse).ErrorCode },
	}
	permCases[kmsg.ShareAcknowledge.Int16()] = permCase{
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrShareAcknowledgeRequest()
			r.GroupID, r.MemberID, r.ShareSessionEpoch = kmsg.StringPtr(permGroup), kmsg.StringPtr("m"), 1
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.ShareAcknowledgeResponse).ErrorCode },
	}
	permCases[kmsg.DescribeShareGroupOffsets.Int16()] = permCase{
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
			g := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
			g.GroupID = permGroup
			r.Groups = append(r.Groups, g)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			return resp.(*kmsg.DescribeShareGroupOffsetsResponse).Groups[0].ErrorCode
		},
	}
	permCases[kmsg.AlterShareGroupOffsets.Int16()] = permCase{
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrAlterShareGroupOffsetsRequest()
			r.GroupID = permGroup
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.AlterShareGroupOffsetsResponse).ErrorCode },
	}
	permCases[kmsg.DeleteShareGroupOffsets.Int16()] = permCase{
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrDeleteShareGroupOffsetsRequest()
			r.GroupID = permGroup
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.DeleteShareGroupOffsetsResponse).ErrorCode },
	}
}
