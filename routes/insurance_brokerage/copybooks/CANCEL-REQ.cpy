      * CANCEL-REQ: a policy sold at the branch cancelled by the customer
      * in its cooling-off (free-look) period (IP02): the premium paid is
      * refunded, less the insurer's cancellation fee, and the broker's
      * commission on it is given back to the insurer.  EBCDIC cp037.
      * DELIVERY-DATE: the day the customer received the policy (the
      * period runs from it); REQUEST-DATE: the day the customer signed
      * the cancellation at the branch (both YYYYMMDD).
       01  CANCEL-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  POLICY-NO         PIC X(20).
           05  INSURER           PIC X(4).
           05  PAYER-ACCT        PIC X(20).
           05  PAYER-NAME        PIC X(30).
           05  PREMIUM           PIC S9(11)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  DELIVERY-DATE     PIC 9(8).
           05  REQUEST-DATE      PIC 9(8).
