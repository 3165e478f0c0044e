package agent_test

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/segment/segmenttest"
)

// permCases builds, per registered API, a request that names the walk's
// resources (TestEveryAPIDeclaresItsPermission).
var permCases = map[int16]permCase{
	kmsg.Produce.Int16(): {
		req: func(e permEnv) kmsg.Request {
			r := kmsg.NewPtrProduceRequest()
			r.Acks, r.TimeoutMillis = -1, 5000
			tp := kmsg.NewProduceRequestTopic()
			tp.Topic, tp.TopicID = permTopic, e.topicID
			p := kmsg.NewProduceRequestTopicPartition()
			p.Records = segmenttest.Batch(segmenttest.BatchOptions{Records: 1})
			tp.Partitions = append(tp.Partitions, p)
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode },
	},
	kmsg.Fetch.Int16(): {
		req: func(e permEnv) kmsg.Request {
			r := kmsg.NewPtrFetchRequest()
			r.MaxWaitMillis, r.MaxBytes = 10, 1<<20
			tp := kmsg.NewFetchRequestTopic()
			tp.Topic, tp.TopicID = permTopic, e.topicID
			p := kmsg.NewFetchRequestTopicPartition()
			p.PartitionMaxBytes = 1 << 20
			tp.Partitions = append(tp.Partitions, p)
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			r := resp.(*kmsg.FetchResponse)
			return firstCode(r.ErrorCode, r.Topics[0].Partitions[0].ErrorCode)
		},
	},
	kmsg.DescribeProducers.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrDescribeProducersRequest()
			tp := kmsg.NewDescribeProducersRequestTopic()
			tp.Topic, tp.Partitions = permTopic, []int32{0}
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			return resp.(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0].ErrorCode
		},
	},
	kmsg.ListOffsets.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrListOffsetsRequest()
			tp := kmsg.NewListOffsetsRequestTopic()
			tp.Topic = permTopic
			tp.Partitions = append(tp.Partitions, kmsg.NewListOffsetsRequestTopicPartition())
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			return resp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode
		},
	},
	kmsg.Metadata.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrMetadataRequest()
			tp := kmsg.NewMetadataRequestTopic()
			tp.Topic = kmsg.StringPtr(permTopic)
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.MetadataResponse).Topics[0].ErrorCode },
	},
	kmsg.OffsetCommit.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrOffsetCommitRequest()
			r.Group, r.Generation = permGroup, -1
			tp := kmsg.NewOffsetCommitRequestTopic()
			tp.Topic = permTopic
			tp.Partitions = append(tp.Partitions, kmsg.NewOffsetCommitRequestTopicPartition())
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			return resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
		},
	},
	kmsg.OffsetFetch.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrOffsetFetchRequest()
			r.Group = permGroup
			tp := kmsg.NewOffsetFetchRequestTopic()
			tp.Topic, tp.Partitions = permTopic, []int32{0}
			r.Topics = append(r.Topics, tp)
			g := kmsg.NewOffsetFetchRequestGroup()
			g.Group = permGroup
			gt := kmsg.NewOffsetFetchRequestGroupTopic()
			gt.Topic, gt.Partitions = permTopic, []int32{0}
			g.Topics = append(g.Topics, gt)
			r.Groups = append(r.Groups, g)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			r := resp.(*kmsg.OffsetFetchResponse)
			if r.Version >= 8 {
				g := r.Groups[0]
				return firstCode(g.ErrorCode, g.Topics[0].Partitions[0].ErrorCode)
			}
			return firstCode(r.ErrorCode, r.Topics[0].Partitions[0].ErrorCode)
		},
	},
	kmsg.FindCoordinator.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrFindCoordinatorRequest()
			r.CoordinatorKey, r.CoordinatorKeys = permGroup, []string{permGroup}
			return r
		},
		code: func(resp kmsg.Response) int16 {
			r := resp.(*kmsg.FindCoordinatorResponse)
			if r.Version >= 4 {
				return r.Coordinators[0].ErrorCode
			}
			return r.ErrorCode
		},
	},
	kmsg.JoinGroup.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrJoinGroupRequest()
			r.Group, r.ProtocolType, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = permGroup, "consumer", 10000, 10000
			p := kmsg.NewJoinGroupRequestProtocol()
			p.Name = "range"
			r.Protocols = append(r.Protocols, p)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.JoinGroupResponse).ErrorCode },
	},
	kmsg.Heartbeat.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrHeartbeatRequest()
			r.Group, r.MemberID = permGroup, "m"
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.HeartbeatResponse).ErrorCode },
	},
	kmsg.LeaveGroup.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrLeaveGroupRequest()
			r.Group, r.MemberID = permGroup, "m"
			m := kmsg.NewLeaveGroupRequestMember()
			m.MemberID = "m"
			r.Members = append(r.Members, m)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.LeaveGroupResponse).ErrorCode },
	},
	kmsg.SyncGroup.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrSyncGroupRequest()
			r.Group, r.MemberID, r.ProtocolType, r.Protocol = permGroup, "m", kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.SyncGroupResponse).ErrorCode },
	},
	kmsg.DescribeGroups.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrDescribeGroupsRequest()
			r.Groups = []string{permGroup}
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.DescribeGroupsResponse).Groups[0].ErrorCode },
	},
	kmsg.ListGroups.Int16(): {
		req: func(permEnv) kmsg.Request { return kmsg.NewPtrListGroupsRequest() },
		// A group the principal may not describe is left out of the list.
		code: func(resp kmsg.Response) int16 {
			r := resp.(*kmsg.ListGroupsResponse)
			for _, g := range r.Groups {
				if g.Group == permGroup {
					return r.ErrorCode
				}
			}
			return firstCode(r.ErrorCode, kerr.GroupAuthorizationFailed.Code)
		},
	},
	kmsg.CreateTopics.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrCreateTopicsRequest()
			r.ValidateOnly, r.TimeoutMillis = true, 5000
			tp := kmsg.NewCreateTopicsRequestTopic()
			tp.Topic, tp.NumPartitions, tp.ReplicationFactor = permTopic, 1, 1
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode },
	},
	kmsg.DeleteTopics.Int16(): {
		topic: permDelTopic,
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrDeleteTopicsRequest()
			r.TimeoutMillis = 5000
			r.TopicNames = []string{permDelTopic}
			tp := kmsg.NewDeleteTopicsRequestTopic()
			tp.Topic = kmsg.StringPtr(permDelTopic)
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode },
	},
	kmsg.DeleteRecords.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrDeleteRecordsRequest()
			r.TimeoutMillis = 5000
			tp := kmsg.NewDeleteRecordsRequestTopic()
			tp.Topic = permTopic
			p := kmsg.NewDeleteRecordsRequestTopicPartition()
			p.Offset = 0
			tp.Partitions = append(tp.Partitions, p)
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			return resp.(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0].ErrorCode
		},
	},
	kmsg.OffsetForLeaderEpoch.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrOffsetForLeaderEpochRequest()
			tp := kmsg.NewOffsetForLeaderEpochRequestTopic()
			tp.Topic = permTopic
			tp.Partitions = append(tp.Partitions, kmsg.NewOffsetForLeaderEpochRequestTopicPartition())
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			return resp.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0].ErrorCode
		},
	},
	kmsg.DescribeConfigs.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrDescribeConfigsRequest()
			rs := kmsg.NewDescribeConfigsRequestResource()
			rs.ResourceType, rs.ResourceName = kmsg.ConfigResourceTypeTopic, permTopic
			r.Resources = append(r.Resources, rs)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.DescribeConfigsResponse).Resources[0].ErrorCode },
	},
	kmsg.AlterConfigs.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrAlterConfigsRequest()
			r.ValidateOnly = true
			rs := kmsg.NewAlterConfigsRequestResource()
			rs.ResourceType, rs.ResourceName = kmsg.ConfigResourceTypeTopic, permTopic
			r.Resources = append(r.Resources, rs)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.AlterConfigsResponse).Resources[0].ErrorCode },
	},
	kmsg.IncrementalAlterConfigs.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrIncrementalAlterConfigsRequest()
			r.ValidateOnly = true
			rs := kmsg.NewIncrementalAlterConfigsRequestResource()
			rs.ResourceType, rs.ResourceName = kmsg.ConfigResourceTypeTopic, permTopic
			r.Resources = append(r.Resources, rs)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			return resp.(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode
		},
	},
	kmsg.CreatePartitions.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrCreatePartitionsRequest()
			r.ValidateOnly, r.TimeoutMillis = true, 5000
			tp := kmsg.NewCreatePartitionsRequestTopic()
			tp.Topic, tp.Count = permTopic, 2
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.CreatePartitionsResponse).Topics[0].ErrorCode },
	},
	kmsg.DeleteGroups.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrDeleteGroupsRequest()
			r.Groups = []string{permGroup}
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode },
	},
	kmsg.OffsetDelete.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrOffsetDeleteRequest()
			r.Group = permGroup
			tp := kmsg.NewOffsetDeleteRequestTopic()
			tp.Topic = permTopic
			tp.Partitions = append(tp.Partitions, kmsg.NewOffsetDeleteRequestTopicPartition())
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			r := resp.(*kmsg.OffsetDeleteResponse)
			if r.ErrorCode != 0 || len(r.Topics) == 0 {
				return r.ErrorCode
			}
			return r.Topics[0].Partitions[0].ErrorCode
		},
	},
	kmsg.DescribeClientQuotas.Int16(): {
		req:  func(permEnv) kmsg.Request { return kmsg.NewPtrDescribeClientQuotasRequest() },
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.DescribeClientQuotasResponse).ErrorCode },
	},
	kmsg.AlterClientQuotas.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrAlterClientQuotasRequest()
			e := kmsg.NewAlterClientQuotasRequestEntry()
			e.Entity = []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "client-id", Name: kmsg.StringPtr("perm")}}
			e.Ops = []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1 << 20}}
			r.Entries = append(r.Entries, e)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.AlterClientQuotasResponse).Entries[0].ErrorCode },
	},
	kmsg.DescribeCluster.Int16(): {
		req:  func(permEnv) kmsg.Request { return kmsg.NewPtrDescribeClusterRequest() },
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.DescribeClusterResponse).ErrorCode },
	},
	kmsg.ElectLeaders.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrElectLeadersRequest()
			rt := kmsg.NewElectLeadersRequestTopic()
			rt.Topic, rt.Partitions = permTopic, []int32{0}
			r.Topics = append(r.Topics, rt)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.ElectLeadersResponse).ErrorCode },
	},
	kmsg.AlterPartitionAssignments.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrAlterPartitionAssignmentsRequest()
			rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
			rt.Topic = permTopic
			rt.Partitions = append(rt.Partitions, kmsg.NewAlterPartitionAssignmentsRequestTopicPartition())
			r.Topics = append(r.Topics, rt)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.AlterPartitionAssignmentsResponse).ErrorCode },
	},
	kmsg.ListPartitionReassignments.Int16(): {
		req:  func(permEnv) kmsg.Request { return kmsg.NewPtrListPartitionReassignmentsRequest() },
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.ListPartitionReassignmentsResponse).ErrorCode },
	},
	kmsg.InitProducerID.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrInitProducerIDRequest()
			r.TransactionTimeoutMillis = 60000
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.InitProducerIDResponse).ErrorCode },
	},
	kmsg.AddPartitionsToTxn.Int16(): {
		req: func(permEnv) kmsg.Request {
			// The batched (v4+) form Broker.Request sends: CLUSTER_ACTION.
			r := kmsg.NewPtrAddPartitionsToTxnRequest()
			tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
			tx.TransactionalID, tx.ProducerID, tx.VerifyOnly = permTxnID, 1, true
			tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
			tt.Topic, tt.Partitions = permTopic, []int32{0}
			tx.Topics = append(tx.Topics, tt)
			r.Transactions = append(r.Transactions, tx)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.AddPartitionsToTxnResponse).ErrorCode },
	},
	kmsg.AddOffsetsToTxn.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrAddOffsetsToTxnRequest()
			r.TransactionalID, r.Group, r.ProducerID = permTxnID, permGroup, 1
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.AddOffsetsToTxnResponse).ErrorCode },
	},
	kmsg.EndTxn.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrEndTxnRequest()
			r.TransactionalID, r.ProducerID = permTxnID, 1
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.EndTxnResponse).ErrorCode },
	},
	kmsg.TxnOffsetCommit.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrTxnOffsetCommitRequest()
			r.TransactionalID, r.Group, r.ProducerID, r.Generation = permTxnID, permGroup, 1, -1
			tp := kmsg.NewTxnOffsetCommitRequestTopic()
			tp.Topic = permTopic
			tp.Partitions = append(tp.Partitions, kmsg.NewTxnOffsetCommitRequestTopicPartition())
			r.Topics = append(r.Topics, tp)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			return resp.(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
		},
	},
	kmsg.DescribeTransactions.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrDescribeTransactionsRequest()
			r.TransactionalIDs = []string{permTxnID}
			return r
		},
		code: func(resp kmsg.Response) int16 {
			return resp.(*kmsg.DescribeTransactionsResponse).TransactionStates[0].ErrorCode
		},
	},
	kmsg.ListTransactions.Int16(): {
		req: func(permEnv) kmsg.Request { return kmsg.NewPtrListTransactionsRequest() },
		// An ID the principal may not describe is left out of the list.
		code: func(resp kmsg.Response) int16 {
			r := resp.(*kmsg.ListTransactionsResponse)
			for _, ts := range r.TransactionStates {
				if ts.TransactionalID == permTxnID {
					return r.ErrorCode
				}
			}
			return firstCode(r.ErrorCode, kerr.TransactionalIDAuthorizationFailed.Code)
		},
	},
	kmsg.CreateACLs.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrCreateACLsRequest()
			c := kmsg.NewCreateACLsRequestCreation()
			c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, "perm-none", kmsg.ACLResourcePatternTypeLiteral
			c.Principal, c.Host, c.Operation, c.PermissionType = "User:perm-none", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeDeny
			r.Creations = append(r.Creations, c)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.CreateACLsResponse).Results[0].ErrorCode },
	},
	kmsg.DescribeACLs.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrDescribeACLsRequest()
			r.ResourceType, r.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
			r.Operation, r.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.DescribeACLsResponse).ErrorCode },
	},
	kmsg.DeleteACLs.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrDeleteACLsRequest()
			f := kmsg.NewDeleteACLsRequestFilter()
			f.ResourceType, f.ResourceName, f.ResourcePatternType = kmsg.ACLResourceTypeTopic, kmsg.StringPtr("perm-none"), kmsg.ACLResourcePatternTypeLiteral
			f.Operation, f.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
			r.Filters = append(r.Filters, f)
			return r
		},
		code: func(resp kmsg.Response) int16 { return resp.(*kmsg.DeleteACLsResponse).Results[0].ErrorCode },
	},
	kmsg.DescribeUserSCRAMCredentials.Int16(): {
		req: func(permEnv) kmsg.Request { return kmsg.NewPtrDescribeUserSCRAMCredentialsRequest() },
		code: func(resp kmsg.Response) int16 {
			return resp.(*kmsg.DescribeUserSCRAMCredentialsResponse).ErrorCode
		},
	},
	kmsg.AlterUserSCRAMCredentials.Int16(): {
		req: func(permEnv) kmsg.Request {
			r := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
			d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
			d.Name, d.Mechanism = "perm-none", 1
			r.Deletions = append(r.Deletions, d)
			return r
		},
		code: func(resp kmsg.Response) int16 {
			return resp.(*kmsg.AlterUserSCRAMCredentialsResponse).Results[0].ErrorCode
		},
	},
}
