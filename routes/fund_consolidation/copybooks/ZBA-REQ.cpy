      * ZBA-REQ: one leg of a zero-balancing or target-balance sweep (FC02):
      * the end-of-day closing balance of one pool member's sub-account, to be
      * swept up to the pool's header account down to the member's target
      * balance (zba_members.csv; 0 = zero balancing).  One record per
      * sub-account and value date.  EBCDIC cp037.
       01  ZBA-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  POOL-ID           PIC X(8).
           05  MEMBER-ID         PIC X(8).
           05  BALANCE           PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  VALUE-DATE        PIC 9(8).
