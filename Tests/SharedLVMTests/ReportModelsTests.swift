import Testing

@testable import SharedLVM

struct ReportModelsTests {
    /// `lvs -a --reportformat json --units b --nosuffix -o <LVMReport.lvFields> vol` as lvm2 2.03.16 prints it.
    static let lvsAll = """
          {
              "report": [
                  {
                      "lv": [
                          {"lv_name":"[lvmlock]", "vg_name":"vol", "lv_uuid":"Xk2p3B-6rUu-3gKy-mAAq-T7jJ-eG9v-2Vfzsm", "lv_size":"268435456", "lv_attr":"-wi-ao----", "lv_active":"active", "lv_active_locally":"active locally", "lv_active_exclusively":"active exclusively", "lv_lockargs":""},
                          {"lv_name":"volume-0d6c493f-697f-48d5-a2dd-8d7aa2c5542c", "vg_name":"vol", "lv_uuid":"i2gjby-VEc6-APGD-x9if-ldk2-oxxI-XOwExz", "lv_size":"64424509440", "lv_attr":"-wi-ao----", "lv_active":"active", "lv_active_locally":"active locally", "lv_active_exclusively":"active exclusively", "lv_lockargs":"1.0.0:77594624"},
                          {"lv_name":"volume-697bd726-e4ae-4c6f-8180-f7dee51421cf", "vg_name":"vol", "lv_uuid":"PDHtUW-8i1O-ECi4-cxmj-pSAF-hZs2-MVqmcF", "lv_size":"64424509440", "lv_attr":"-wi-------", "lv_active":"", "lv_active_locally":"", "lv_active_exclusively":"", "lv_lockargs":"1.0.0:70254592"}
                      ]
                  }
              ]
          }
        """

    @Test func decodesLVs() throws {
        let lvs = try LVMReport.decodeLVs(Self.lvsAll)
        #expect(lvs.count == 3)
        #expect(lvs[0].isInternal)
        let used = lvs[1]
        #expect(used.name == "volume-0d6c493f-697f-48d5-a2dd-8d7aa2c5542c")
        #expect(used.vg == "vol")
        #expect(used.uuid == "i2gjby-VEc6-APGD-x9if-ldk2-oxxI-XOwExz")
        #expect(used.sizeBytes == 60 << 30)
        #expect(used.active && used.activeLocally && used.activeExclusively)
        #expect(used.deviceOpen)
        #expect(used.lockArgs == "1.0.0:77594624")
        #expect(used.path == "/dev/vol/volume-0d6c493f-697f-48d5-a2dd-8d7aa2c5542c")
        let idle = lvs[2]
        #expect(!idle.active && !idle.activeLocally && !idle.activeExclusively && !idle.deviceOpen)
        #expect(idle.attr.state == .inactive)
    }

    @Test func tagsAreACommaSeparatedList() throws {
        let json = """
            {"report":[{"lv":[{"lv_name":"a","vg_name":"vol","lv_uuid":"u","lv_size":"4194304","lv_attr":"-wi-a-----","lv_active":"1","lv_active_locally":"1","lv_active_exclusively":"0","lv_lockargs":"","lv_tags":"aos-released.cmp-1,other"},
            {"lv_name":"b","vg_name":"vol","lv_uuid":"u2","lv_size":"4194304","lv_attr":"-wi-------","lv_active":"","lv_active_locally":"","lv_active_exclusively":"","lv_lockargs":"","lv_tags":""}]}]}
            """
        let lvs = try LVMReport.decodeLVs(json)
        #expect(lvs.map(\.tags) == [["aos-released.cmp-1", "other"], []])
        #expect(try LVMReport.decodeLVs(Self.lvsAll).allSatisfy { $0.tags.isEmpty }, "a report without lv_tags: no tags")
    }

    @Test func binaryFlagsAsNumbers() throws {
        let json = """
            {"report":[{"lv":[{"lv_name":"a","vg_name":"vol","lv_uuid":"u","lv_size":"4194304","lv_attr":"-wi-a-----","lv_active":"1","lv_active_locally":"1","lv_active_exclusively":"0","lv_lockargs":""}]}]}
            """
        let lv = try #require(try LVMReport.decodeLVs(json).first)
        #expect(lv.active && lv.activeLocally && !lv.activeExclusively)
    }

    @Test func rejectsGarbage() {
        #expect(throws: LVMError.self) { try LVMReport.decodeLVs("  WARNING: something\n") }
        #expect(throws: LVMError.self) {
            try LVMReport.decodeLVs(#"{"report":[{"lv":[{"lv_name":"a","vg_name":"vol","lv_size":"4.00m","lv_attr":"-wi-------"}]}]}"#)
        }
        #expect(throws: LVMError.self) {
            try LVMReport.decodeLVs(#"{"report":[{"lv":[{"lv_name":"a","vg_name":"vol","lv_size":"4194304","lv_attr":"-wi"}]}]}"#)
        }
    }

    @Test func decodesVG() throws {
        let json = """
              {
                  "report": [
                      {
                          "vg": [
                              {"vg_name":"vol", "vg_uuid":"c9Pq1W-0s3N-lzBp-2Ghh-UqQ4-nM9x-rXq1Zk", "vg_attr":"wz--ns", "vg_size":"1069547520", "vg_free":"532676608", "vg_extent_size":"4194304", "vg_extent_count":"255", "vg_free_count":"127", "lv_count":"3", "pv_count":"1", "vg_missing_pv_count":"0", "vg_lock_type":"sanlock", "vg_lock_args":"1.0.0:lvmlock", "vg_mda_size":"1044480", "vg_mda_free":"1039360"}
                          ]
                      }
                  ]
              }
            """
        let vg = try #require(try LVMReport.decodeVGs(json).first)
        #expect(vg.name == "vol")
        #expect(vg.shared && !vg.partial)
        #expect(vg.sizeBytes == 1_069_547_520 && vg.freeBytes == 532_676_608)
        #expect(vg.extentSizeBytes == 4 << 20 && vg.extentCount == 255 && vg.freeExtentCount == 127)
        #expect(vg.lvCount == 3 && vg.pvCount == 1 && vg.missingPVCount == 0)
        #expect(vg.lockType == "sanlock" && vg.lockArgs == "1.0.0:lvmlock")
        #expect(vg.metadataAreaSizeBytes == 1_044_480 && vg.metadataAreaFreeBytes == 1_039_360)
    }

    @Test func attrPlainActiveOpen() throws {
        let attr = try #require(LVAttr("-wi-ao----"))
        #expect(attr.volumeType == .plain)
        #expect(attr.permissions == .writeable)
        #expect(attr.allocationPolicy == .inherited && !attr.allocationLocked)
        #expect(!attr.fixedMinor)
        #expect(attr.state == .active)
        #expect(attr.deviceOpen == true)
        #expect(attr.targetType == "-")
        #expect(!attr.zero)
        #expect(attr.health == .ok)
        #expect(!attr.skipActivation)
    }

    /// After the lvmlockctl kill command loaded `error` tables (lab notes).
    @Test func attrUnknownAfterErrorTable() throws {
        let attr = try #require(LVAttr("-wi-XX--X-"))
        #expect(attr.state == .unknown)
        #expect(attr.deviceOpen == nil)
        #expect(attr.health == .unknown)
    }

    @Test func attrOtherLetters() throws {
        let attr = try #require(LVAttr("Vwi-a-tz-k"))
        #expect(attr.volumeType == .thinVolume)
        #expect(attr.targetType == "t")
        #expect(attr.zero)
        #expect(attr.skipActivation)
        let locked = try #require(LVAttr("rwCma-r-p-"))
        #expect(locked.volumeType == .raid && locked.allocationPolicy == .contiguous && locked.allocationLocked)
        #expect(locked.fixedMinor && locked.health == .partial)
        #expect(LVAttr("-wi-a----") == nil)
    }
}
